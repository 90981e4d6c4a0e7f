"""Ollama Modelfile: a TEMPLATE derived from the HF chat template, the Modelfile parser, and a Python
interpreter for the Go-template subset it uses, to render prompts the way Ollama does."""

from __future__ import annotations

import json
import re
from typing import Any

from .common import ModelfileError, _chat

_SENT = {"system": "SYSQ7x1", "user": "USRQ7x2", "assistant": "ASTQ7x3", "user2": "USRQ7x4"}


def _derive_role_template(tokenizer) -> dict:
    """Split the HF chat template into `LEAD + (P role M content E)* + P assistant M` pieces with sentinels."""
    s, u, a, u2 = _SENT["system"], _SENT["user"], _SENT["assistant"], _SENT["user2"]
    try:
        multi = _chat(tokenizer, [{"role": "system", "content": s}, {"role": "user", "content": u},
                                  {"role": "assistant", "content": a}, {"role": "user", "content": u2}])
        nosys = _chat(tokenizer, [{"role": "user", "content": u}])
    except Exception as e:
        raise ModelfileError(f"the chat template cannot render system/user/assistant turns: {e}") from e
    if not all(x in multi for x in (s, u, a, u2)) or not (multi.index(s) < multi.index(u) < multi.index(a)
                                                          < multi.index(u2)):
        raise ModelfileError("the chat template does not render messages in order (system prompt merged or dropped?)")
    seg0 = multi[: multi.index(s)]
    seg_su = multi[multi.index(s) + len(s): multi.index(u)]
    seg_ua = multi[multi.index(u) + len(u): multi.index(a)]
    seg_au = multi[multi.index(a) + len(a): multi.index(u2)]
    tail = multi[multi.index(u2) + len(u2):]
    if seg_ua != tail:
        raise ModelfileError("the generation prompt differs from the assistant turn header; not a role-header template")
    # seg_ua = X + "assistant" + M, seg_su = X + "user" + M ; find M as the longest common suffix that works
    found = None
    for k in range(min(len(seg_su), len(seg_ua)), -1, -1):
        m = seg_ua[len(seg_ua) - k:] if k else ""
        if not seg_su.endswith(m):
            continue
        xa, xu = seg_ua[: len(seg_ua) - k], seg_su[: len(seg_su) - k]
        if xa.endswith("assistant") and xu.endswith("user") and xa[: -len("assistant")] == xu[: -len("user")]:
            found = (xa[: -len("assistant")], m)
            break
    if found is None:
        raise ModelfileError("the chat template does not write role names between fixed markers (ChatML / Llama-3 style)")
    x, m = found
    if seg_au != x + "user" + m or not seg0.endswith("system" + m):
        raise ModelfileError("turn separators depend on the previous role; not a role-header template")
    lead_p = seg0[: -len("system" + m)]
    # x = E + P and lead_p = LEAD + P: P is a common suffix; take the longest one that starts at a marker
    # ("<|start_header_id|>", "<|im_start|>", "<s>"...), not mid-token, so E and P are whole markers.
    k_max = 0
    while k_max < min(len(x), len(lead_p)) and x[len(x) - 1 - k_max] == lead_p[len(lead_p) - 1 - k_max]:
        k_max += 1
    k = next((j for j in range(k_max, 0, -1) if x[len(x) - j] == "<"), k_max)
    p = x[len(x) - k:] if k else ""
    e = x[: len(x) - k]
    lead = lead_p[: len(lead_p) - k]
    # default system block (e.g. SmolLM2 / Qwen insert one when the chat has no system message)
    if not nosys.endswith(u + x + "assistant" + m) or u not in nosys:
        raise ModelfileError("the chat template renders a user-only chat differently from a chat with a system turn")
    before_user = nosys[: nosys.index(u)]
    if not before_user.startswith(lead) or not before_user.endswith(p + "user" + m):
        raise ModelfileError("cannot locate the default system block of the chat template")
    default_sys = before_user[len(lead): len(before_user) - len(p + "user" + m)]
    return {"lead": lead, "p": p, "m": m, "e": e, "default_system": default_sys}


def _ollama_template(parts: dict, drop_lead: bool) -> str:
    lead = "" if drop_lead else parts["lead"]
    p, m, e = parts["p"], parts["m"], parts["e"]
    system_block = f"{p}system{m}{{{{ .System }}}}{e}"
    if parts["default_system"]:
        sys_part = f"{{{{ if .System }}}}{system_block}{{{{ else }}}}{parts['default_system']}{{{{ end }}}}"
    else:
        sys_part = f"{{{{ if .System }}}}{system_block}{{{{ end }}}}"
    turns = (f'{{{{ range .Messages }}}}{{{{ if ne .Role "system" }}}}{p}{{{{ .Role }}}}{m}'
             f"{{{{ .Content }}}}{e}{{{{ end }}}}{{{{ end }}}}")
    return f"{lead}{sys_part}{turns}{p}assistant{m}"


def _modelfile_parts(tokenizer) -> tuple[str, list[str], str]:
    """(Ollama TEMPLATE, stop strings, text the runtime prepends itself: BOS when dropped from the template)."""
    if not tokenizer.chat_template:
        raise ModelfileError("the tokenizer has no chat template")
    parts = _derive_role_template(tokenizer)
    bos = tokenizer.bos_token or ""
    auto_bos = bool(tokenizer.bos_token_id is not None
                    and tokenizer("x", add_special_tokens=True)["input_ids"][:1] == [tokenizer.bos_token_id]
                    and tokenizer("x", add_special_tokens=False)["input_ids"][:1] != [tokenizer.bos_token_id])
    drop_lead = bool(parts["lead"]) and parts["lead"] == bos and auto_bos
    template = _ollama_template(parts, drop_lead)
    if '"""' in template:
        raise ModelfileError('the chat template contains """, which a Modelfile cannot quote')
    stops: list[str] = []
    for s in (parts["e"].strip(), parts["p"].strip(), tokenizer.eos_token or ""):
        if s and s not in stops:
            stops.append(s)
    return template, stops, (parts["lead"] if drop_lead else "")


def render_modelfile(tokenizer, system_prompt: str, gguf_name: str, *, temperature: float = 0.3,
                     num_ctx: int | None = None) -> str:
    """An Ollama Modelfile for `gguf_name` (a file beside it) whose TEMPLATE reproduces the HF chat template.

    Supports "role header" templates: every turn is `P + role + M + content + E` and the generation prompt is
    `P + "assistant" + M` (ChatML as in SmolLM2/Qwen, Llama 3), with an optional default system block used
    when the chat has no system message. The derived TEMPLATE is checked against
    `tokenizer.apply_chat_template` on probe chats; raises ModelfileError when it cannot be expressed.
    """
    template, stops, bos = _modelfile_parts(tokenizer)
    for probe in _modelfile_probes(system_prompt):
        want = _chat(tokenizer, probe)
        got = render_ollama_prompt_from_parts(template, None, probe, bos=bos)
        if got != want:
            raise ModelfileError(
                f"derived Ollama TEMPLATE does not reproduce the chat template (got {got[:160]!r}, want {want[:160]!r})"
            )
    if '"""' in (system_prompt or ""):
        raise ModelfileError('the system prompt contains """, which a Modelfile cannot quote')
    lines = [
        "# Ollama Modelfile written by slm-pipeline; build with: ollama create <name> -f Modelfile",
        f"FROM ./{gguf_name}",
        f'TEMPLATE """{template}"""',
    ]
    if system_prompt:
        lines.append(f'SYSTEM """{system_prompt}"""')
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    lines.append(f"PARAMETER temperature {temperature:g}")
    if num_ctx:
        lines.append(f"PARAMETER num_ctx {int(num_ctx)}")
    return "\n".join(lines) + "\n"


def _modelfile_probes(system_prompt: str) -> list[list[dict]]:
    sys_text = system_prompt or "You are a helpful assistant."
    return [
        [{"role": "system", "content": sys_text}, {"role": "user", "content": "Hi! Where is my order?"}],
        [{"role": "user", "content": "Hello"}],
        [{"role": "system", "content": sys_text}, {"role": "user", "content": "One"},
         {"role": "assistant", "content": "Two.\nThree"}, {"role": "user", "content": "Four?"}],
    ]


_MODELFILE_LINE = re.compile(r'^[ \t]*([A-Za-z]+)[ \t]+(?:"""(.*?)"""|([^\n]*))[ \t]*$', re.M | re.S)


def parse_modelfile(text: str) -> dict[str, Any]:
    """Parse the Modelfile subset we write: FROM, TEMPLATE / SYSTEM (triple-quoted, multi-line), PARAMETER."""
    out: dict[str, Any] = {"parameters": {}}
    for m in _MODELFILE_LINE.finditer(text):
        cmd = m.group(1).upper()
        value = m.group(2) if m.group(2) is not None else m.group(3).strip()
        if cmd == "PARAMETER":
            key, _, val = value.partition(" ")
            val = val.strip()
            if len(val) >= 2 and val[0] == val[-1] == '"':
                val = val[1:-1]
            out["parameters"].setdefault(key, []).append(val)
        else:
            out[cmd.lower()] = value
    return out


# A tiny interpreter for the Go text/template subset we emit: text, {{ .Field }}, {{ if COND }}..{{ else if COND }}..
# {{ else }}..{{ end }}, {{ range .Messages }}..{{ end }}, COND = .Field | not .Field | eq/ne .Field "str";
# {{- and -}} trim whitespace as in Go.
_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def _go_parse(template: str) -> list:
    items: list = []
    pos = 0
    for mt in _ACTION.finditer(template):
        text = template[pos: mt.start()]
        if mt.group(1) == "-":
            text = text.rstrip(" \t\r\n")
        if items and isinstance(items[-1], tuple) and items[-1][0] == "trim_right":
            items.pop()
            text = text.lstrip(" \t\r\n")
        items.append(("text", text))
        items.append(("action", mt.group(2)))
        if mt.group(3) == "-":
            items.append(("trim_right", None))
        pos = mt.end()
    text = template[pos:]
    if items and items[-1][0] == "trim_right":
        items.pop()
        text = text.lstrip(" \t\r\n")
    items.append(("text", text))

    def parse_if(it, cond: str):
        then, ended = block(it, ("else", "end"))
        other: list = []
        if ended != "end":
            rest = ended[len("else"):].strip()
            if rest.startswith("if "):  # {{ else if COND }} chains share the final {{ end }}
                other = [parse_if(it, rest[3:].strip())]
            elif not rest:
                other, _ = block(it, ("end",))
            else:
                raise ModelfileError(f"template action {{{{ {ended} }}}} is outside the supported subset")
        return ("if", cond, then, other)

    def block(it, stop: tuple[str, ...]):
        nodes: list = []
        for kind, val in it:
            if kind == "text":
                if val:
                    nodes.append(("text", val))
                continue
            word = val.split(" ", 1)[0]
            if word in stop:
                return nodes, val
            if word == "if":
                nodes.append(parse_if(it, val[3:].strip()))
            elif word == "range":
                body, _ = block(it, ("end",))
                nodes.append(("range", val[6:].strip(), body))
            elif val.startswith("."):
                nodes.append(("var", val))
            else:
                raise ModelfileError(f"template action {{{{ {val} }}}} is outside the supported subset")
        if stop:
            raise ModelfileError(f"template block not closed (expected {stop})")
        return nodes, None

    nodes, _ = block(iter(items), ())
    return nodes


def _go_value(expr: str, dot: dict):
    expr = expr.strip()
    if expr.startswith('"') and expr.endswith('"'):
        return json.loads(expr)
    if expr == ".":
        return dot
    if expr.startswith("."):
        cur: Any = dot
        for partname in expr[1:].split("."):
            cur = cur.get(partname, "") if isinstance(cur, dict) else getattr(cur, partname, "")
        return cur
    raise ModelfileError(f"unsupported template expression {expr!r}")


def _go_cond(cond: str, dot: dict) -> bool:
    toks = re.findall(r'"(?:[^"\\]|\\.)*"|\S+', cond)
    if toks[0] == "not" and len(toks) == 2:
        return not _go_value(toks[1], dot)
    if toks[0] in ("eq", "ne") and len(toks) == 3:
        same = _go_value(toks[1], dot) == _go_value(toks[2], dot)
        return same if toks[0] == "eq" else not same
    if len(toks) == 1:
        return bool(_go_value(toks[0], dot))
    raise ModelfileError(f"unsupported template condition {cond!r}")


def _go_exec(nodes: list, dot: dict, out: list[str]) -> None:
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out.append(node[1])
        elif kind == "var":
            out.append(str(_go_value(node[1], dot)))
        elif kind == "if":
            _go_exec(node[2] if _go_cond(node[1], dot) else node[3], dot, out)
        elif kind == "range":
            for item in _go_value(node[1], dot) or []:
                _go_exec(node[2], item, out)


def render_go_template(template: str, values: dict) -> str:
    """Execute the Go-template subset that `render_modelfile` emits with `values` as dot."""
    out: list[str] = []
    _go_exec(_go_parse(template), values, out)
    return "".join(out)


def render_ollama_prompt_from_parts(template: str, default_system: str | None, messages: list[dict],
                                    bos: str = "") -> str:
    """The prompt text Ollama builds for /api/chat: Modelfile SYSTEM added when the chat has none, system
    messages collected into .System (and kept in .Messages), consecutive same-role messages merged."""
    msgs = [dict(m) for m in messages]
    if default_system and not (msgs and msgs[0].get("role") == "system"):
        msgs.insert(0, {"role": "system", "content": default_system})
    system = "\n\n".join(m["content"] for m in msgs if m["role"] == "system")
    collated: list[dict] = []
    for m in msgs:
        if collated and collated[-1]["Role"] == m["role"]:
            collated[-1]["Content"] += "\n\n" + m["content"]
        else:
            collated.append({"Role": m["role"], "Content": m["content"]})
    return bos + render_go_template(template, {"System": system, "Messages": collated, "Response": ""})


def render_ollama_prompt(modelfile: str, messages: list[dict], tokenizer=None) -> str:
    """Render `messages` through a Modelfile's TEMPLATE (and SYSTEM) the way Ollama does, in Python.

    If the template leaves BOS to the runtime (Llama 3 style), pass the tokenizer to get it prepended, so the
    result is comparable with `tokenizer.apply_chat_template(..., add_generation_prompt=True, tokenize=False)`.
    """
    mf = parse_modelfile(modelfile)
    if "template" not in mf:
        raise ModelfileError("the Modelfile has no TEMPLATE")
    bos = _modelfile_parts(tokenizer)[2] if tokenizer is not None else ""
    return render_ollama_prompt_from_parts(mf["template"], mf.get("system"), messages, bos=bos)
