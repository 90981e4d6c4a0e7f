"""Presidio AnalyzerEngine setup: the light spaCy NLP engine, context enhancer, our recognizers."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from presidio_analyzer import (
    AnalyzerEngine,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer, LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    SpacyRecognizer,
    UsSsnRecognizer,
)

from slm_pipeline.config import AnonymizeConfig
from slm_pipeline.core.anonymize.common import _SPACY_EXCLUDE, DEFAULT_SPACY_MODEL, LANG, log, make_offline
from slm_pipeline.core.anonymize.lexicons import use_vocabulary
from slm_pipeline.core.anonymize.recognizers.address_blocks import AddressBlockRecognizer
from slm_pipeline.core.anonymize.recognizers.addresses import PostcodeRecognizer, StreetAddressRecognizer
from slm_pipeline.core.anonymize.recognizers.name_structure import PersonStructureRecognizer
from slm_pipeline.core.anonymize.recognizers.names import PersonContextRecognizer, PersonGazetteerRecognizer
from slm_pipeline.core.anonymize.recognizers.ner import FilteredSpacyRecognizer
from slm_pipeline.core.anonymize.recognizers.network import ObfuscatedEmailRecognizer
from slm_pipeline.core.anonymize.recognizers.numbers import (
    AccountIdRecognizer,
    DriverLicenseRecognizer,
    IbanPlusRecognizer,
    LuhnCardRecognizer,
    OrderIdRecognizer,
    PhoneNumberRecognizer,
    SsnPlusRecognizer,
)

# ---------------------------------------------------------------------------------------------------------
# Engine
# ---------------------------------------------------------------------------------------------------------

_IGNORED_NER = ["CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT", "FAC", "PRODUCT", "EVENT", "WORK_OF_ART",
                "LAW", "LANGUAGE"]


class FastSpacyNlpEngine(SpacyNlpEngine):
    """SpacyNlpEngine that loads only the pipes Presidio needs (tok2vec + ner); lemmas fall back to lower text."""

    def __init__(self, model_name: str = DEFAULT_SPACY_MODEL, exclude: Sequence[str] = _SPACY_EXCLUDE):
        super().__init__(
            models=[{"lang_code": LANG, "model_name": model_name}],
            ner_model_configuration=NerModelConfiguration(labels_to_ignore=_IGNORED_NER),
        )
        self.model_name = model_name
        self.exclude = list(exclude)

    def load(self) -> None:  # noqa: D102
        import spacy

        if not spacy.util.is_package(self.model_name) and not Path(self.model_name).exists():
            # Never download: Presidio's default would call spacy.cli.download here.
            raise RuntimeError(
                f"spaCy model {self.model_name!r} is not installed; install it (offline wheel) or set "
                f"anonymize.spacy_model to an installed model"
            )
        self.nlp = {LANG: spacy.load(self.model_name, exclude=self.exclude)}

    def _doc_to_nlp_artifact(self, doc, language):  # noqa: D102
        from spacy.attrs import IDX, LOWER

        arr = doc.to_array([LOWER, IDX]) if len(doc) else None
        strings = doc.vocab.strings
        lemmas = [strings[int(h)] for h in arr[:, 0]] if arr is not None else []
        indices = arr[:, 1].tolist() if arr is not None else []
        entities, scores = (), []
        if doc.has_annotation("ENT_IOB"):
            entities = self._get_entities(doc)
            scores = self._get_scores_for_entities(doc)
            entities, scores = self._get_updated_entities(entities, scores)
        return _LightArtifacts(entities=entities, tokens=doc, tokens_indices=indices, lemmas=lemmas,
                               nlp_engine=self, language=language, scores=scores)


class _LightArtifacts(NlpArtifacts):
    """NlpArtifacts whose context keywords are all word tokens, lower-cased.

    Presidio drops spaCy stop words from context keywords, but spaCy lists "call", "name", "back" ... as stop
    words, so "call me on ..." would never count as phone context. Also skips per-token vocabulary lookups."""

    @staticmethod
    def set_keywords(nlp_engine, lemmas, language):  # noqa: D102
        return [w for w in lemmas if w[:1].isalnum() or w[-1:].isalnum()]


class _InPlaceContextEnhancer(LemmaContextAwareEnhancer):
    """Presidio's lemma/context-word enhancer, minus the deep copy of every result (our results are created
    fresh for each call) and skipping results that are already confident."""

    def __init__(self, skip_above: float = 0.8, **kw):
        super().__init__(**kw)
        self.skip_above = skip_above

    def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):  # noqa: D102
        results = list(raw_results)
        if nlp_artifacts is None or not results:
            return results
        by_id = {r.id: r for r in recognizers}
        context = [w.lower() for w in context] if context else []
        for result in results:
            meta = result.recognition_metadata or {}
            rec = by_id.get(meta.get(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY))
            if rec is None or not rec.context or result.score >= self.skip_above:
                continue
            if meta.get(RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY):
                continue
            words = self._extract_surrounding_words(
                nlp_artifacts=nlp_artifacts, word=text[result.start:result.end], start=result.start
            )
            words.extend(context)
            hit = self._find_supportive_word_in_context(words, rec.context, self.context_matching_mode)
            if hit:
                result.score = min(max(result.score + self.context_similarity_factor,
                                       self.min_score_with_context_similarity), ContextAwareEnhancer.MAX_SCORE)
                if result.analysis_explanation is not None:
                    result.analysis_explanation.set_supportive_context_word(hit)
                    result.analysis_explanation.set_improved_score(result.score)
        return results


@lru_cache(maxsize=4)
def _nlp_engine(model_name: str) -> FastSpacyNlpEngine:
    eng = FastSpacyNlpEngine(model_name)
    eng.load()
    return eng


_OUR_ENTITIES = {
    "PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "STREET_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS",
    "US_DRIVER_LICENSE", "ORDER_ID", "ACCOUNT_ID", "POSTCODE",
}
_NER_ENTITIES = {"PERSON", "LOCATION", "ORGANIZATION", "DATE_TIME", "NRP"}


def _recognizers_for(entities: Sequence[str]) -> list:
    want = set(entities)
    recs: list = []
    ner_ents = sorted(want & _NER_ENTITIES)
    if ner_ents:
        recs.append(FilteredSpacyRecognizer(supported_language=LANG, supported_entities=ner_ents))
    if "PERSON" in want:
        recs += [PersonGazetteerRecognizer(), PersonContextRecognizer(), PersonStructureRecognizer()]
    if "EMAIL_ADDRESS" in want:
        recs += [EmailRecognizer(), ObfuscatedEmailRecognizer()]
    if "PHONE_NUMBER" in want:
        recs.append(PhoneNumberRecognizer())
    if "STREET_ADDRESS" in want:
        recs += [StreetAddressRecognizer(), AddressBlockRecognizer()]
    if "CREDIT_CARD" in want:
        recs += [CreditCardRecognizer(), LuhnCardRecognizer()]
    if "IBAN_CODE" in want:
        recs += [IbanRecognizer(), IbanPlusRecognizer()]
    if "US_SSN" in want:
        recs += [UsSsnRecognizer(), SsnPlusRecognizer()]
    if "IP_ADDRESS" in want:
        recs.append(IpRecognizer())
    if "US_DRIVER_LICENSE" in want:
        recs.append(DriverLicenseRecognizer())
    if "ORDER_ID" in want:
        recs.append(OrderIdRecognizer())
    if "ACCOUNT_ID" in want:
        recs.append(AccountIdRecognizer())
    if "POSTCODE" in want:
        recs.append(PostcodeRecognizer())
    extra = want - _OUR_ENTITIES - _NER_ENTITIES
    if extra:  # other Presidio entity types (e.g. URL, UK_NHS): use Presidio's predefined recognizers
        reg = RecognizerRegistry(supported_languages=[LANG])
        reg.load_predefined_recognizers(languages=[LANG])
        found = set()
        for r in reg.recognizers:
            if isinstance(r, SpacyRecognizer):
                continue
            if set(r.supported_entities) & extra:
                recs.append(r)
                found |= set(r.supported_entities)
        if extra - found:
            log.warning("no recognizer for configured entities %s; they will not be detected", sorted(extra - found))
    return recs


def build_analyzer(cfg: AnonymizeConfig) -> AnalyzerEngine:
    """Offline Presidio AnalyzerEngine with spaCy (tok2vec+ner only) and our recognizers for cfg.entities."""
    make_offline()
    use_vocabulary(getattr(cfg, "vocabulary_file", None))
    engine = _nlp_engine(getattr(cfg, "spacy_model", DEFAULT_SPACY_MODEL))
    registry = RecognizerRegistry(recognizers=_recognizers_for(cfg.entities), supported_languages=[LANG])
    return AnalyzerEngine(
        registry=registry,
        nlp_engine=engine,
        supported_languages=[LANG],
        default_score_threshold=cfg.score_threshold,
        context_aware_enhancer=_InPlaceContextEnhancer(
            context_similarity_factor=0.35,
            min_score_with_context_similarity=0.4,
            context_prefix_count=7,
            context_suffix_count=4,
            context_matching_mode="whole_word",
        ),
    )


