"""bench.md: one markdown table of every section's headline figures (details stay in bench.json)."""

from __future__ import annotations


def _pct(x):
    return "-" if x is None else f"{100 * x:.1f}%"


def _v(x, suffix=""):
    return "-" if x is None else f"{x}{suffix}"


def retrieval_rows(r: dict | None) -> list[str]:
    """Rows of the retrieval section: 'ours' = with retrieved context, 'baseline' = without."""
    if not r:
        return []
    if "search" not in r:
        return [f"| retrieval | | {r.get('skipped', r.get('error', '-'))} | | | |"]
    s, ix, rec = r["search"], r.get("index", {}), r.get("recall") or {}
    where = f"{ix.get('chunks')} chunks, {ix.get('source', '-')}"
    lines = [f"| retrieval | search ms/query p50, one at a time ({s['n_queries']} gold questions, k={s['k']}; "
             f"{where}) | {_v(s['ms_p50'])} | | | |",
             f"| retrieval | search ms/query p95 | {_v(s['ms_p95'])} | | | |",
             f"| retrieval | gold key-fact recall@1 / @3 (index summary) | {_pct(rec.get('recall_at_1'))} / "
             f"{_pct(rec.get('recall_at_3'))} | | | |"]
    untuned = (r.get("embedder_tuning") or {}).get("untuned_recall")
    if untuned:  # same chunks and questions, the embedder before domain-tuning
        lines.append(f"| retrieval | gold recall@1 / @3, domain-tuned embedder vs untuned "
                     f"({r['embedder_tuning']['pairs']} corpus pairs, {r['embedder_tuning']['seconds']} s) | "
                     f"{_pct(rec.get('recall_at_1'))} / {_pct(rec.get('recall_at_3'))} | "
                     f"{_pct(untuned.get('recall_at_1'))} / {_pct(untuned.get('recall_at_3'))} | | |")
    t = r.get("ttft", {})
    if "context" in t:
        p, c = t["plain"], t["context"]
        lines.append(f"| retrieval | TTFT p50 ms, k={t['k']} retrieved chunks vs plain system prompt ({t['model']}, "
                     f"{t['n']} gold questions, best of {t.get('repeats', 1)} runs each) | {_v(c['ttft_ms_p50'])} | {_v(p['ttft_ms_p50'])} | "
                     f"{_v(t['ttft_p50_ratio'], 'x')} | |")
        if "copy_bias" in t:
            b = t["copy_bias"]
            lines.append(f"| retrieval | TTFT p50 ms with context, copy-biased decoding (retrieval.copy_bias "
                         f"{b['bias']}) vs not | {_v(b['ttft_ms_p50'])} | {_v(c['ttft_ms_p50'])} | "
                         f"{_v(t['copy_bias_ttft_ratio'], 'x')} | |")
        lines.append(f"| retrieval | mean prompt tokens, with vs without context | {_v(c['prompt_tokens_mean'])} | "
                     f"{_v(p['prompt_tokens_mean'])} | {_v(t['prompt_tokens_ratio'], 'x')} | |")
    elif t:
        lines.append(f"| retrieval | TTFT with vs without context | {t.get('skipped', t.get('error', '-'))} | | | |")
    tr = r.get("training", {})
    if "raft" in tr:
        p, q = tr["plain"], tr["raft"]
        lines.append(f"| retrieval | training real tok/s, RAFT vs plain samples (ours, {tr['precision']} packed) | "
                     f"{q['tokens_per_s']} | {p['tokens_per_s']} | {_v(q.get('tokens_per_s_vs_plain'), 'x')} | |")
        lines.append(f"| retrieval | mean sample tokens (<= max_seq_len {tr['max_seq_len']}), RAFT vs plain | "
                     f"{_v(q['mean_sample_tokens'])} | {_v(p['mean_sample_tokens'])} | "
                     f"{_v(q.get('sample_tokens_vs_plain'), 'x')} | |")
    elif tr:
        lines.append(f"| retrieval | training on RAFT samples | {tr.get('skipped', tr.get('error', '-'))} | | | |")
    return lines


def serving_rows(s: dict | None) -> list[str]:
    """Rows of the serving load test (benchmarks/serving.py): one line of figures per scenario."""
    if not s:
        return []
    if "in_process" not in s and "api_layer_1_replica" not in s:
        return [f"| serving | | {s.get('skipped', s.get('error', '-'))} | | | |"]
    names = {"in_process_1_client": "1 replica, in-process {model}, one client alone",
             "in_process": "1 replica, in-process {model}", "api_layer_1_replica":
             "1 replica, instant stand-in upstream engine (the serve layer alone)", "api_layer_2_replicas":
             "2 replicas behind a round-robin TCP balancer, same stand-in"}
    lines = []
    for key, label in names.items():
        r = s.get(key)
        if not r:
            continue
        label = label.format(model=s.get("in_process", {}).get("model", ""))
        threads = f", torch threads {s['torch_threads']}" if s.get("torch_threads") else ""
        what = f"{label}; {r['clients']} clients, {r['seconds']} s, max_tokens {s['max_tokens']}{threads}"
        lines.append(f"| serving | {what}: requests/s (completion tok/s) | {r['requests_per_s']} "
                     f"({r['completion_tokens_per_s']}) | | | |")
        lines.append(f"| serving | ↳ latency p50 / p95 ms; 429 / 503 / errors; /health p95 ms | "
                     f"{_v(r['latency_ms_p50'])} / {_v(r['latency_ms_p95'])}; {r['rejected_429']} / "
                     f"{r['busy_503']} / {r['errors']}; {_v(r['health_ms_p95'])} | | | |")
    if s.get("load_average_1m_before") is not None:
        lines.append(f"| serving | machine load average (1 min) before / after the load tests | "
                     f"{s['load_average_1m_before']} / {s.get('load_average_1m_after', '-')} | | | |")
    one, two = s.get("api_layer_1_replica"), s.get("api_layer_2_replicas")
    if one and two and one.get("requests_per_s"):
        lines.append(f"| serving | 2 replicas vs 1, requests/s ({s.get('cpu_count')} CPUs shared with the load "
                     f"generator) | {two['requests_per_s']} | {one['requests_per_s']} | "
                     f"{round(two['requests_per_s'] / one['requests_per_s'], 2)}x | |")
    return lines


def markdown(res: dict) -> str:
    lines = ["# slm-pipeline bench", ""]
    m = res.get("machine", {})
    if m:
        lines.append(f"Machine: {m.get('cpu_count')} CPUs, torch threads {m.get('torch_threads')}; measured matmul "
                     f"{m['n']}x{m['n']}: fp32 {m['fp32_gflops']} GFLOP/s, bf16 {m['bf16_gflops']} GFLOP/s. "
                     "Every ratio is measured side by side in this run.")
        lines.append("")
    lines += ["| section | metric | ours | baseline | ratio | target |", "|---|---|---|---|---|---|"]
    t = res.get("training")
    if t and "ours" in t:
        o, n = t["ours"], t["naive"]
        lines.append(f"| training | real tok/s ({t['precision_ours']} packed vs fp32 padded) | {o['tokens_per_s']} | "
                     f"{n['tokens_per_s']} | {t['speedup']}x | >=2.5x |")
        lines.append(f"| training | pad share of computed tokens | {_pct(o['pad_share'])} | {_pct(n['pad_share'])} "
                     "| | |")
        lines.append(f"| training | MFU 4N vs bf16 peak | {_pct(o['mfu_4n_vs_bf16_peak'])} | "
                     f"{_pct(n['mfu_4n_vs_bf16_peak'])} | | >=50% |")
        lines.append(f"| training | MFU 4N vs own-dtype peak | {_pct(o['mfu_4n_vs_own_peak'])} | "
                     f"{_pct(n['mfu_4n_vs_own_peak'])} | | |")
        lines.append(f"| training | MFU 6N vs bf16 peak | {_pct(o['mfu_6n_vs_bf16_peak'])} | "
                     f"{_pct(n['mfu_6n_vs_bf16_peak'])} | | |")
        lines.append(f"| training | peak RSS during side (MB, both models resident) | {o['peak_rss_mb_during']:.0f} | "
                     f"{n['peak_rss_mb_during']:.0f} | | |")
    elif t:
        lines.append(f"| training | | {t.get('skipped', t.get('error', '-'))} | | | |")
    a = res.get("anonymization")
    if a and "ours_batch_docs_per_s" in a:
        lines.append(f"| anonymization | docs/s (batch vs per-doc vanilla, {a['n_texts']} texts) | "
                     f"{a['ours_batch_docs_per_s']} | {a['vanilla_per_doc_docs_per_s']} | {a['speedup_vs_vanilla']}x "
                     "| >=4x |")
        lines.append(f"| anonymization | direct-identifier recall (labeled set) | {_pct(a.get('ours_direct_recall'))} | "
                     f"{_pct(a.get('vanilla_direct_recall'))} | | >= baseline |")
        if a.get("ours_direct_recall_oog") is not None:
            lines.append(f"| anonymization | direct-identifier recall (out-of-gazetteer set) | "
                         f"{_pct(a.get('ours_direct_recall_oog'))} | {_pct(a.get('vanilla_direct_recall_oog'))} | | "
                         ">= baseline |")
    elif a:
        lines.append(f"| anonymization | | {a.get('skipped', a.get('error', '-'))} | | | |")
    inf = res.get("inference")
    if inf and "variants" in inf:
        ref = inf["variants"].get("hf-fp32", {})
        for kind, v in inf["variants"].items():
            if "skipped" in v:
                lines.append(f"| inference | {kind} | skipped: {v['skipped']} | | | |")
                continue
            if kind == "hf-fp32":
                continue
            note = f" ({v['note']})" if v.get("note") else ""
            target = ">=8x" if kind.startswith("gguf") else ">=2x"
            lines.append(f"| inference | {kind} decode tok/s vs HF fp32{note} | {_v(v.get('decode_tok_s_mean'))} | "
                         f"{_v(ref.get('decode_tok_s_mean'))} | {_v(v.get('decode_vs_fp32'), 'x')} | {target} |")
            lines.append(f"| inference | {kind} TTFT p50 ms vs HF fp32 | {_v(v.get('ttft_ms_p50'))} | "
                         f"{_v(ref.get('ttft_ms_p50'))} | {_v(v.get('ttft_vs_fp32'), 'x')} | |")
        b = inf.get("batched")
        if b:
            lines.append(f"| inference | generate_batch({b['batch_size']}) vs one-at-a-time tok/s (fp32) | "
                         f"{b['batched_tok_s']} | {b['one_at_a_time_tok_s']} | {b['speedup']}x | |")
    elif inf:
        lines.append(f"| inference | | {inf.get('skipped', inf.get('error', '-'))} | | | |")
    lines += retrieval_rows(res.get("retrieval"))
    lines += serving_rows(res.get("serving"))
    e = res.get("end_to_end")
    if e:
        if e.get("status") in ("ok", "partial"):
            for step, s in sorted(e["steps_s"].items(), key=lambda kv: -kv[1]):
                lines.append(f"| end-to-end | {step} (s) | {s} | | | |")
            part = ", steps finished so far" if e["status"] == "partial" else ""
            lines.append(f"| end-to-end | sum of steps (s), run {e['run_id'][:8]} ({e['run_status']}{part}) | "
                         f"{e['sum_steps_s']} | | | |")
            if e.get("run_wall_s") is not None:
                lines.append(f"| end-to-end | run wall time (s), start to end | {e['run_wall_s']} | | | <=900 |")
            if e.get("note"):
                lines.append(f"| end-to-end | | {e['note']} | | | |")
        else:
            lines.append(f"| end-to-end | | {e.get('note', e.get('skipped', e.get('error', '-')))} | | | |")
    lines.append("")
    lines.append(f"Bench wall time: {res.get('wall_s', '-')} s. Details in bench.json.")
    return "\n".join(lines)
