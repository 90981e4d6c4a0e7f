"""Questions for document chunks: what a user would ask to get this chunk as the answer (heuristic, offline).

A chunk knows its page title and heading path ("Syncthing Configuration › GUI Element › address"). The question
names the topic (the last heading) with the context a reader needs (the page title, or the parent heading when
the topic alone is vague), in one of several phrasings picked deterministically per chunk so the model does not
learn one phrasing only. A heading that is already a question is used as it is. Never imports dagster.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["DOC_QUESTION_TEMPLATES", "IN_CONTEXT_TEMPLATES", "doc_question", "topic_phrase"]

# A question about the topic alone (a page's intro, or a topic that names its context already) ...
DOC_QUESTION_TEMPLATES = (
    "What does {company} say about {topic}?",
    "Can you tell me about {topic}?",
    "I have a question about {topic}. What should I know?",
)
# ... and about a topic within its page ({context}: the page title or parent heading, as written there).
IN_CONTEXT_TEMPLATES = (
    "{context}: what should I know about {topic}?",
    "What does {company} say about {topic} ({context})?",
    "Can you explain {topic} in {context}?",
    "{context}: how does {topic} work?",
)
# Headings that name a part of a page, not a topic: the question needs the page they belong to.
_GENERIC = {"overview", "introduction", "description", "details", "notes", "note", "example", "examples", "usage",
            "synopsis", "summary", "options", "background", "general", "configuration", "settings", "scenarios",
            "see also", "faq", "troubleshooting", "caveats", "limitations", "requirements", "installation"}
_LEADING_ARTICLE = re.compile(r"^(the|a|an)\s+", re.IGNORECASE)


def _stable_int(key: str) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest()[:16], 16)


def topic_phrase(heading: str, company: str = "") -> str:
    """A heading as it reads inside a sentence: ordinary capitalized words lowercased ("Battery Care" ->
    "battery care"), names and identifiers kept (the company, LoopBike, GPS, maxSendKbps, `--home`)."""
    words = []
    for w in heading.replace("`", "").split():
        plain = w.strip("(),:;")
        ordinary = plain[:1].isupper() and plain[1:].islower() and plain.isalpha() and plain.lower() != company.lower()
        words.append(w.lower() if ordinary else w)
    return " ".join(words).rstrip(".:!")


def doc_question(company: str, title: str, path: list[str] | tuple[str, ...], key: str) -> str:
    """A user-style question about the chunk under `path` (headings below the title) of page `title`."""
    heading = (path[-1] if path else title).strip()
    if heading.endswith("?"):  # the heading is already a question
        return heading
    topic = topic_phrase(heading, company)
    pick = _stable_int(key)
    if heading.lower() in _GENERIC:  # "Scenarios" of "Load Balancing": the part of what
        owner = path[-2] if len(path) >= 2 else title
        topic = f"the {topic} of {_LEADING_ARTICLE.sub('', topic_phrase(owner, company))}"
        return DOC_QUESTION_TEMPLATES[pick % len(DOC_QUESTION_TEMPLATES)].format(company=company, topic=topic)
    context = (path[-2] if len(path) >= 2 else title).strip().rstrip(".:")
    if not path or topic.lower() in context.lower() or context.lower() in topic.lower():
        return DOC_QUESTION_TEMPLATES[pick % len(DOC_QUESTION_TEMPLATES)].format(company=company, topic=topic)
    return IN_CONTEXT_TEMPLATES[pick % len(IN_CONTEXT_TEMPLATES)].format(company=company, topic=topic,
                                                                         context=context)
