"""The assistant's policy (system prompt, scope, refusal) and the gold evaluation questions.

policy.yaml keys: company (str), system_prompt (str), scope (list of str), refusal (str),
out_of_scope_examples (list of str). Unknown keys are ignored so the file can carry notes.

gold_qa.jsonl lines: {"id": str, "question": str, "reference": str, "key_facts": [str, ...],
"match": "all" | "any"}. key_facts defaults to [] and match to "all".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = ["Policy", "PolicyError", "GoldError", "load_policy", "load_gold"]


class PolicyError(ValueError):
    """policy.yaml is missing or invalid; the message names the file and the key."""


class GoldError(ValueError):
    """A gold Q&A line is invalid; the message names file:line and the field."""


@dataclass(frozen=True)
class Policy:
    company: str
    system_prompt: str
    scope: list[str] = field(default_factory=list)
    refusal: str = ""
    out_of_scope_examples: list[str] = field(default_factory=list)


def _str_list(value, path: Path, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise PolicyError(f"{path}: key {key!r} must be a list of non-empty strings, got {value!r}")
    return [v.strip() for v in value]


def load_policy(path: Path | str) -> Policy:
    path = Path(path)
    if not path.exists():
        raise PolicyError(f"Policy file {path} does not exist; create it or set the `policy_file` setting.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise PolicyError(f"{path}: not valid UTF-8 YAML: {e}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: expected a mapping with keys company, system_prompt, scope, refusal, "
                          f"out_of_scope_examples; got {type(data).__name__}")
    for key in ("company", "system_prompt", "refusal"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise PolicyError(f"{path}: key {key!r} is missing or empty; it must be a non-empty string")
    return Policy(
        company=data["company"].strip(),
        system_prompt=data["system_prompt"].strip(),
        scope=_str_list(data.get("scope", []), path, "scope"),
        refusal=data["refusal"].strip(),
        out_of_scope_examples=_str_list(data.get("out_of_scope_examples", []), path, "out_of_scope_examples"),
    )


def load_gold(path: Path | str) -> list[dict]:
    """Read and validate gold Q&A; returns dicts with id, question, reference, key_facts, match."""
    path = Path(path)
    if not path.exists():
        raise GoldError(f"Gold file {path} does not exist; create it or set the `gold_file` setting.")
    out: list[dict] = []
    seen: dict[str, int] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise GoldError(f"{where}: malformed JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise GoldError(f"{where}: expected a JSON object")
        for key in ("id", "question", "reference"):
            if not isinstance(obj.get(key), str) or not obj[key].strip():
                raise GoldError(f"{where}: field {key!r} is missing or empty; it must be a non-empty string")
        if obj["id"] in seen:
            raise GoldError(f"{where}: duplicate id {obj['id']!r} (first on line {seen[obj['id']]})")
        seen[obj["id"]] = line_no
        facts = obj.get("key_facts", [])
        if not isinstance(facts, list) or not all(isinstance(f, str) and f.strip() for f in facts):
            raise GoldError(f"{where}: 'key_facts' must be a list of non-empty strings, got {facts!r}")
        match = obj.get("match", "all")
        if match not in ("all", "any"):
            raise GoldError(f"{where}: 'match' must be \"all\" or \"any\", got {match!r}")
        out.append({**obj, "question": obj["question"].strip(), "reference": obj["reference"].strip(),
                    "key_facts": [f.strip() for f in facts], "match": match})
    if not out:
        raise GoldError(f"{path}: no gold questions; add one JSON object per line.")
    return out
