#!/usr/bin/env python3
"""Generates pattern_goldens.json: for each of the 53 real chat templates in shared/data/chat_templates, the assistant
pattern legacy speculators (<= v0.7.0, preprocessing._detect_assistant_pattern, speculators.md section 6.4) derives from
its probe render, and the group-1 spans Python's `re` finds with that pattern in a few rendered conversations (unicode,
<think> content, special-token text inside messages, tool calls). Rendering uses Python jinja2 configured like
transformers (gen_cases.render of the Jinja test fixtures), bos "<s>", eos "</s>".

Run from this folder (Python 3.11 + jinja2 3.1):  python3 gen_pattern_goldens.py > pattern_goldens.json
"""
import glob
import hashlib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "Speculators.Jinja.Tests", "Fixtures"))
from gen_cases import render  # noqa: E402


def shared_data():
    env = os.environ.get("SPECULATORS_SHARED_DATA")
    if env:
        return env
    d = HERE
    while True:
        cand = os.path.join(d, "shared", "data")
        if os.path.isdir(cand):
            return cand
        parent = os.path.dirname(d)
        if parent == d:
            raise SystemExit("shared/data not found; set SPECULATORS_SHARED_DATA")
        d = parent


def detect(text):
    """The detection algorithm as speculators.md section 6.4 describes it (Python string and re semantics)."""
    a1 = text.find("ASSISTANT_MSG_1")
    a2 = text.find("ASSISTANT_MSG_2")
    if a1 == -1 or a2 == -1:
        return None
    a1_end = a1 + len("ASSISTANT_MSG_1")
    a2_end = a2 + len("ASSISTANT_MSG_2")
    u2_end = text.find("USER_MSG_2") + len("USER_MSG_2")
    prefix = text[u2_end:a2]
    pos = prefix.rfind("assistant")
    if pos != -1:
        start = max(prefix.rfind("<", 0, pos), prefix.rfind("[", 0, pos))
        marker = prefix[start:] if start != -1 else prefix[pos:]
    else:
        marker = prefix
    marker = re.sub(r"<think>.*?</think>\s*", "", marker, flags=re.DOTALL)
    tail1 = text[a1_end:text.find("USER_MSG_2")]
    tail2 = text[a2_end:]
    n = 0
    while n < min(len(tail1), len(tail2)) and tail1[n] == tail2[n]:
        n += 1
    suffix = tail1[:n] or tail1 or "\n"
    m = re.search(r"((<\|?[a-zA-Z0-9_]+[\|>]?)|(\[[a-zA-Z0-9_]+\]))", marker)
    boundary = m.group(1) if m else None
    look = f"(?!{re.escape(boundary)})" if boundary else r"(?!<\|start\|)"
    return marker, suffix, boundary, re.escape(marker) + r"((?:" + look + r".)*?)" + re.escape(suffix)


PROBE = [{"role": "user", "content": "USER_MSG_1"}, {"role": "assistant", "content": "ASSISTANT_MSG_1"},
         {"role": "user", "content": "USER_MSG_2"}, {"role": "assistant", "content": "ASSISTANT_MSG_2"}]

TOOLS = [{"type": "function", "function": {"name": "search", "description": "Search the web",
          "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}]

CONVERSATIONS = [
    ("unicode_think_special", dict(messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi 🙂 日本語?"},
        {"role": "assistant", "content": "Hello ✓ 🎉 — ça va"},
        {"role": "user", "content": "Say <|im_end|> and <|eot_id|> literally"},
        {"role": "assistant", "content": "<think>\nreason 🤔\n</think>\n\nDone: <|im_start|> 👍🏽"},
    ])),
    ("tool_call", dict(messages=[
        {"role": "user", "content": "find cats"},
        {"role": "assistant", "content": "Searching.", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "search", "arguments": {"q": "cats"}}}]},
        {"role": "tool", "content": "3 results", "tool_call_id": "c1"},
        {"role": "assistant", "content": "Found 3 cats 🐈."},
    ], tools=TOOLS)),
    ("multi_turn", dict(messages=[
        {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2\n\nwith\nlines"},
        {"role": "user", "content": "q3"}, {"role": "assistant", "content": "a3"},
    ])),
]


def variables(conv):
    v = {"bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": False, "tools": None}
    v.update(conv)
    return v


def main():
    out = {}
    for path in sorted(glob.glob(os.path.join(shared_data(), "chat_templates", "*.jinja"))):
        name = os.path.basename(path)
        src = open(path, encoding="utf-8").read()
        probe = render(src, variables({"messages": PROBE}))
        entry = {}
        if not probe["ok"]:
            entry["probe_error"] = probe["error_type"]
        else:
            d = detect(probe["text"])
            if d is None:
                entry["detected"] = False
            else:
                marker, suffix, boundary, pattern = d
                entry.update(detected=True, role_marker=marker, suffix=suffix, boundary=boundary)
                convs = []
                for cname, conv in CONVERSATIONS:
                    r = render(src, variables(conv))
                    if not r["ok"]:
                        convs.append({"name": cname, "error_type": r["error_type"]})
                        continue
                    text = r["text"]
                    spans = [[m.start(1), m.end(1)] for m in re.finditer(pattern, text, re.DOTALL)]
                    convs.append({"name": cname, "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                                  "length": len(text), "spans": spans})
                entry["conversations"] = convs
        out[name] = entry
    json.dump({"conversations": [{"name": n, **c} for n, c in CONVERSATIONS], "templates": out},
              sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
