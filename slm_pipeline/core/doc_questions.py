"""Questions for document chunks: what a user would ask to get this chunk as the answer (heuristic, offline).

A chunk knows its page title and heading path ("Syncthing Configuration › GUI Element › address"). The question
names the topic (the last heading) with the context a reader needs (the page title, or the parent heading when
the topic alone is vague), in one of several phrasings picked deterministically per chunk so the model does not
learn one phrasing only. A heading that is already a question is used as it is. Never imports dagster.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["DOC_QUESTION_TEMPLATES", "IN_CONTEXT_TEMPLATES", "doc_question", "fact_questions", "topic_phrase"]

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
    if heading.lower().startswith("how to "):  # "How to set up a user service" is a question without its mark
        return f"How do I {topic_phrase(heading[7:], company)}?"
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


# ---------------------------------------------------------------------------------------------- fact questions

_FENCED = re.compile(r"^\s*(```|~~~).*?^\s*\1[^\n]*$", re.MULTILINE | re.DOTALL)
_TERM_LINE = re.compile(r"^\s*\*\*`?([^*`\n]{1,60}?)`?\*\*(?:\s*\(([^)\n]{1,20})\))?\s*$")
_SENTENCES = re.compile(r"(?<=[.!?])\s+(?=[A-Z`*(])")
_DEFINITION = re.compile(r"^(The |An |A )?(`[^`]{1,50}`|[A-Za-z][\w-]*(?: [\w-]+){0,3}) (is|are) (?:a|an|the|used|"
                         r"responsible|required|needed|enabled|disabled|set) ")
_TO_DO = re.compile(r"^To ([a-z][^,.;:]{5,90}), ")
_IF = re.compile(r"^If ([^,.;:]{5,90}), ")
# A definition's subject or a condition starting with one of these depends on text the question would not carry.
_VAGUE = {"this", "it", "that", "there", "these", "those", "they", "which", "he", "she", "we", "you", "i", "each",
          "one", "some", "all", "both", "what", "who", "here", "such", "other", "only", "note", "so", "not", "on", "in",
          "at", "for", "with", "by", "from", "to", "of", "as", "when", "where", "while", "after", "before", "omitted",
          "set", "enabled", "disabled", "unset", "empty", "true", "false", "succeeded", "failed", "needed", "desired",
          "necessary", "possible", "applicable", "present", "missing", "given", "specified", "used", "following"}
_VERSION_NOTE = re.compile(r"^\*?(?:New|Changed) in version [^*]*\*?\s*")
_LIST_OR_CODE = ("```", "~~~", "- ", "* ", "1. ", "1) ")
# A clause pointing at something said before ("to avoid such issues", "if this happens") makes a vague question.
_REFERS_BACK = re.compile(r"\b(?:such|this|that|these|those|it|them|above|below|former|latter)\b", re.IGNORECASE)
_DEFAULT = re.compile(r"(?:the default is|defaults to|default value|by default)", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*_\d+>")
_YOU = [(re.compile(r"\byou are\b"), "I am"), (re.compile(r"\byou're\b"), "I'm"), (re.compile(r"\byourself\b"), "myself"),
        (re.compile(r"\byours\b"), "mine"), (re.compile(r"\byour\b"), "my"), (re.compile(r"\byou\b"), "I")]


def _as_asker(text: str) -> str:
    """A clause as the user would say it ("you want to share your folder" -> "I want to share my folder")."""
    for pattern, repl in _YOU:
        text = pattern.sub(repl, text)
    return text


def _concise(sentences: list[str], max_words: int = 45) -> str:
    """The first sentences, up to about max_words words (at least one)."""
    out: list[str] = []
    for s in sentences:
        if out and len(" ".join([*out, s]).split()) > max_words:
            break
        out.append(s)
    return " ".join(out).strip()


def _with_what_follows(answer: str, following: str) -> str | None:
    """An answer ending in ':' (or not ending a sentence: "..., use") gets the code or list it introduces (no
    answer without one); a fact stated in fewer than 4 words is no answer."""
    if len(answer.split()) < 4:
        return None
    if answer.rstrip("*_`)\"'").endswith((".", "!", "?")):
        return answer
    return f"{answer}\n\n{following}" if following.startswith(_LIST_OR_CODE) else None


def fact_questions(text: str, title: str, path: list[str] | tuple[str, ...], company: str,
                   limit: int) -> list[tuple[str, str]]:
    """Up to `limit` (question, concise answer) pairs for single facts stated in a chunk: a defined term
    ("**`folder.markerName`**" followed by its description), "X is a ..." definitions, "To do X, ..."
    instructions (with the code block that follows), "If X, ..." consequences, and default values. The answer is
    the sentence(s) that state the fact, so a chunk with several facts gives several short pairs."""
    if limit <= 0:
        return []
    topic = topic_phrase(path[-1] if path else title, company)
    found: list[tuple[str, str]] = []
    blocks = [b.strip() for b in re.split(r"\n\s*\n", text) if b.strip()]
    for i, block in enumerate(blocks):
        lines = block.split("\n")
        term = _TERM_LINE.match(lines[0])
        if term:  # a definition list item: the term alone on its line, its description below or in the next block
            body = "\n".join(lines[1:]).strip() or (blocks[i + 1] if i + 1 < len(blocks) else "")
            body = _VERSION_NOTE.sub("", body)
            if body and not body.startswith(("```", "**")):
                name = re.sub(r"=<[^>]*>|\s*\([^)]*\)", "", term.group(1)).strip()
                q = (f"{topic_phrase(path[-1], company) if path else title}: what does {name} mean?"
                     if term.group(2) or " " not in name and "." not in name and not any(c.isupper() for c in name)
                     else f"What is {name} for?")
                answer = _concise(_SENTENCES.split(" ".join(body.split())))
                if answer[:1].islower():  # "Folder Label" + "should be set to ...": the term is the subject
                    answer = f"{name} {answer}"
                if len(answer.split()) >= 4:
                    found.append((q, answer))
            continue
        if block.startswith(("```", "~~~", "|")) or _FENCED.match(block):
            continue
        sentences = _SENTENCES.split(" ".join(block.split()))
        for j, sent in enumerate(sentences):
            if _PLACEHOLDER.search(sent) or len(sent.split()) < 6 or "**" in sent or " # " in sent:
                continue
            rest = sentences[j:]
            nxt = blocks[i + 1] if i + 1 < len(blocks) else ""
            m = _TO_DO.match(sent)
            if m and not _REFERS_BACK.search(m.group(1)):
                answer = _with_what_follows(_concise(rest, 40), nxt)
                if answer:
                    found.append((f"How do I {_as_asker(m.group(1))}?", answer))
                continue
            m = _IF.match(sent)
            if m and len(m.group(1).split()) >= 4 and m.group(1).split()[0].lower() not in _VAGUE \
                    and not _REFERS_BACK.search(m.group(1)):
                found.append((f"What happens if {_as_asker(m.group(1))}?", sent))
                continue
            m = _DEFINITION.match(sent)
            if m and m.group(2).strip("`").lower().split()[0] not in _VAGUE:
                article, answer = (m.group(1) or "").lower(), _with_what_follows(_concise(rest, 40), nxt)
                if answer:
                    found.append((f"What {m.group(3)} {article}{m.group(2)}?", answer))
                continue
            if path and path[-1].lower() not in _GENERIC and _DEFAULT.search(sent) and re.search(r"`|\d", sent):
                found.append((f"What is the default for {topic} ({title})?", sent))
    seen: set[str] = set()
    out = []
    for q, a in found:
        if q.lower() not in seen and a and not _PLACEHOLDER.search(q):
            seen.add(q.lower())
            out.append((q, a))
    return out[:limit]
