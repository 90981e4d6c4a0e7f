"""Precision controls: the allow-list and dropping detections that are technical, not personal."""

from __future__ import annotations

from collections.abc import Iterable

import regex as re

from slm_pipeline.core.anonymize.findings import Finding
from slm_pipeline.core.anonymize.recognizers.network import _technical_email, non_public_ip


class AllowList:
    """anonymize.allow (plus the policy's company name): terms and 're:<regex>' entries that are never PII.

    A detection inside an allowed match is dropped; a person span that starts or ends with an allowed term is
    trimmed ("Ubuntu Syncthing" -> "Ubuntu")."""

    def __init__(self, entries: Iterable[str] = ()):
        terms, self.regexes = [], []
        for i, entry in enumerate(entries):
            entry = str(entry).strip()
            if entry.startswith("re:"):
                try:
                    self.regexes.append(re.compile(entry[3:]))
                except re.error as err:
                    raise ValueError(f"anonymize.allow[{i}]: {entry[3:]!r} is not a valid regex ({err})") from None
            elif entry:
                terms.append(r"\s+".join(re.escape(w) for w in entry.split()))
        terms.sort(key=len, reverse=True)
        self.terms = re.compile(r"(?<!\w)(?:" + "|".join(terms) + r")(?!\w)", re.I) if terms else None

    def __bool__(self) -> bool:
        return bool(self.terms or self.regexes)

    def spans(self, text: str) -> list[tuple[int, int]]:
        out = [m.span() for m in self.terms.finditer(text)] if self.terms else []
        for rx in self.regexes:
            out += [m.span() for m in rx.finditer(text) if m.end() > m.start()]
        return out

    def apply(self, text: str, findings: list[Finding]) -> list[Finding]:
        spans = self.spans(text) if findings else []
        if not spans:
            return findings
        out = []
        for f in findings:
            s, e = f.start, f.end
            if any(a <= s and e <= b for a, b in spans):
                continue
            if f.entity_type == "PERSON":
                for a, b in spans:
                    if a <= s < b:
                        s = b
                    if a < e <= b:
                        e = a
                while s < e and not text[s].isalnum():
                    s += 1
                while e > s and not text[e - 1].isalnum():
                    e -= 1
                if e - s < 2:
                    continue
                if (s, e) != (f.start, f.end):
                    f = Finding(f.entity_type, s, e, f.score, text[s:e], f.source)
            out.append(f)
        return out


def _drop_non_pii(text: str, findings: list[Finding], keep_non_public_ips: bool) -> list[Finding]:
    """Drop kept IPs and technical user@host strings, and anything detected inside them ("192.168.0.123" is no
    phone number either)."""
    keep = [(f.start, f.end) for f in findings
            if (f.entity_type == "IP_ADDRESS" and keep_non_public_ips and non_public_ip(f.text))
            or (f.entity_type == "EMAIL_ADDRESS" and _technical_email(text, f.start, f.end))]
    if not keep:
        return findings
    return [f for f in findings if not any(a <= f.start and f.end <= b for a, b in keep)]


