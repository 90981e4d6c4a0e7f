"""Ask a running `slm-pipeline serve` questions over HTTP and score the answers the way a user gets them.

    .venv/bin/python scripts/ask_served.py --gold assets/gold/gold_qa.jsonl --ood assets/probes/out_of_domain.jsonl
    .venv/bin/python scripts/ask_served.py --gold assets/dev/dev_qa.jsonl --url http://127.0.0.1:8000

Prints key-fact accuracy, false refusals (in-domain questions refused), out-of-domain refusals and answers with
anonymization tags; --out writes every question, answer, score and the sources the server returned.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path

from slm_pipeline.config import load_config
from slm_pipeline.core.metrics import is_refusal, key_fact_score, placeholder_tags
from slm_pipeline.core.policy import load_gold, load_policy


def ask(url: str, question: str, token: str | None) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    body = json.dumps({"messages": [{"role": "user", "content": question}]}).encode()
    req = urllib.request.Request(f"{url}/v1/chat/completions", body, headers)
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.loads(resp.read())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--token", default=None)
    p.add_argument("--gold", default="assets/gold/gold_qa.jsonl", help="in-domain questions with key facts")
    p.add_argument("--ood", default=None, help="out-of-domain probes (JSONL with 'question')")
    p.add_argument("--out", default=None, help="write all answers to this JSON file")
    p.add_argument("--config", default=None, help="the settings file the server runs with (for the policy's refusal)")
    args = p.parse_args(argv)
    cfg = load_config(args.config)
    refusal = load_policy(cfg.path(cfg.policy_file)).refusal
    gold = load_gold(args.gold)
    ood = [json.loads(line) for line in Path(args.ood).read_text().splitlines() if line.strip()] if args.ood else []
    rows, t0 = [], time.perf_counter()
    for kind, items in (("gold", gold), ("ood", ood)):
        for n, item in enumerate(items, 1):
            doc = ask(args.url, item["question"], args.token)
            answer = doc["choices"][0]["message"]["content"]
            row = {"kind": kind, "id": item["id"], "question": item["question"], "answer": answer,
                   "refused": is_refusal(answer, refusal), "tags": placeholder_tags(answer),
                   "sources": doc.get("sources")}
            if kind == "gold":
                row["correct"] = key_fact_score(answer, item["key_facts"], item["match"]).score
            rows.append(row)
            print(f"\r{kind} {n}/{len(items)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    g = [r for r in rows if r["kind"] == "gold"]
    o = [r for r in rows if r["kind"] == "ood"]
    print(f"{args.gold}: key-fact accuracy {sum(r['correct'] for r in g) / len(g):.2f} ({len(g)} questions), "
          f"false refusals {sum(r['refused'] for r in g) / len(g):.2f}")
    if o:
        print(f"{args.ood}: refused {sum(r['refused'] for r in o) / len(o):.2f} ({len(o)} probes)")
    print(f"answers with anonymization tags: {sum(bool(r['tags']) for r in rows)}; "
          f"responses with sources: {sum(bool(r['sources']) for r in rows)}/{len(rows)}; "
          f"{time.perf_counter() - t0:.0f}s")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
