"""Contract with the Presidio internals core/anonymize/ overrides or calls (pyproject caps presidio <2.3).

If a Presidio upgrade renames or re-signatures one of these, this fails with the name of what changed, instead
of the anonymizer silently losing context scoring or NER entities."""

from __future__ import annotations

import inspect

import pytest
from presidio_analyzer import RecognizerResult
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers.generic import email_recognizer

# (owner, private member, parameter names our code passes or overrides with)
CONTRACT = [
    (SpacyNlpEngine, "_doc_to_nlp_artifact", ["self", "doc", "language"]),
    (SpacyNlpEngine, "_get_entities", ["self", "doc"]),
    (SpacyNlpEngine, "_get_scores_for_entities", ["self", "doc"]),
    (SpacyNlpEngine, "_get_updated_entities", ["self", "entities", "scores"]),
    (LemmaContextAwareEnhancer, "_extract_surrounding_words", ["self", "nlp_artifacts", "word", "start"]),
    (LemmaContextAwareEnhancer, "_find_supportive_word_in_context",
     ["context_list", "recognizer_context_list", "matching_mode"]),
    (LemmaContextAwareEnhancer, "enhance_using_context",
     ["self", "text", "raw_results", "nlp_artifacts", "recognizers", "context"]),
    (NlpArtifacts, "set_keywords", ["nlp_engine", "lemmas", "language"]),
    (NlpArtifacts, "__init__",
     ["self", "entities", "tokens", "tokens_indices", "lemmas", "nlp_engine", "language", "scores"]),
]


@pytest.mark.parametrize("owner,name,params", CONTRACT, ids=[f"{o.__name__}.{n}" for o, n, _ in CONTRACT])
def test_private_presidio_members_unchanged(owner, name, params):
    member = getattr(owner, name, None)
    assert member is not None, f"presidio removed {owner.__name__}.{name}; core/anonymize/ relies on it"
    got = list(inspect.signature(member).parameters)
    assert got == params, f"presidio changed {owner.__name__}.{name}{got}; core/anonymize/ expects {params}"


def test_attributes_and_module_globals_we_patch():
    # make_offline() swaps the module global EmailRecognizer uses for tldextract
    assert hasattr(email_recognizer, "tldextract"), "EmailRecognizer no longer uses a module-level tldextract"
    for key in ("RECOGNIZER_NAME_KEY", "RECOGNIZER_IDENTIFIER_KEY", "IS_SCORE_ENHANCED_BY_CONTEXT_KEY"):
        assert hasattr(RecognizerResult, key), f"RecognizerResult.{key} is gone"
    enh = LemmaContextAwareEnhancer(context_similarity_factor=0.35, min_score_with_context_similarity=0.4,
                                    context_prefix_count=7, context_suffix_count=4, context_matching_mode="whole_word")
    for attr in ("context_similarity_factor", "min_score_with_context_similarity", "context_matching_mode"):
        assert hasattr(enh, attr), f"LemmaContextAwareEnhancer.{attr} is gone"
