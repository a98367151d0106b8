#!/usr/bin/env python3
"""Generates template_variants.json: the 53 real chat templates of shared/data/chat_templates rendered by Python
jinja2 3.1 (configured like transformers, see gen_cases.py) over extra conversations beyond scenarios.json:
tool calls with dict and string arguments, parallel calls, multimodal content parts, None/empty content,
thinking on/off, unusual roles, custom special tokens and template kwargs. Expected outputs are stored as
SHA-256 of the UTF-8 text plus length and generation spans (or the error) to keep the fixture small.

Run from this folder:  python3 gen_variants.py > template_variants.json
"""
import copy
import glob
import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_cases import render  # noqa: E402



def shared_data():
    """SPECULATORS_SHARED_DATA, else the first shared/data found walking up from here (as TestPaths does)."""
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


D = os.path.join(shared_data(), "chat_templates")

TOOLS = [{"type":"function","function":{"name":"search","description":"Search the web","parameters":{"type":"object","properties":{"q":{"type":"string","description":"query"},"n":{"type":"integer","enum":[1,2,3]},"tags":{"type":"array","items":{"type":"string"}},"opts":{"type":"object","properties":{"safe":{"type":"boolean"}},"required":["safe"]}},"required":["q"]}}},
       {"type":"function","function":{"name":"noargs","description":"No args","parameters":{"type":"object","properties":{}}}}]
V = []


def add(name, messages, **kw):
    V.append((name, dict(messages=messages, **kw)))


add("plain_user", [{"role":"user","content":"Hello"}], add_generation_prompt=True)
add("sys_user_asst", [{"role":"system","content":"Be brief."},{"role":"user","content":"2+2?"},{"role":"assistant","content":"4"}])
add("asst_first", [{"role":"assistant","content":"I start."},{"role":"user","content":"ok"}])
add("empty_content", [{"role":"user","content":""},{"role":"assistant","content":""}])
add("none_content", [{"role":"user","content":"x"},{"role":"assistant","content":None,"tool_calls":[{"type":"function","function":{"name":"search","arguments":"{\"q\": \"x\"}"}}]},{"role":"tool","content":"res","tool_call_id":"1"}], tools=TOOLS)
add("tool_dict_args", [{"role":"user","content":"find cats"},{"role":"assistant","content":"Let me search.","tool_calls":[{"id":"c1","type":"function","function":{"name":"search","arguments":{"q":"cats","n":2,"tags":["a","b"],"opts":{"safe":True}}}}]},{"role":"tool","content":[{"type":"text","text":"3 results"}],"tool_call_id":"c1"},{"role":"assistant","content":"Found 3."}], tools=TOOLS, add_generation_prompt=False)
add("two_tools_parallel", [{"role":"user","content":"go"},{"role":"assistant","content":"","tool_calls":[{"type":"function","function":{"name":"search","arguments":{"q":"a"}}},{"type":"function","function":{"name":"noargs","arguments":{}}}]},{"role":"tool","content":"r1"},{"role":"tool","content":"r2"}], tools=TOOLS, add_generation_prompt=True)
add("multimodal_parts", [{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image"},{"type":"text","text":" thanks"}]},{"role":"assistant","content":[{"type":"text","text":"A cat."}]}])
add("think_multi", [{"role":"user","content":"q1"},{"role":"assistant","content":"<think>\nr1\n</think>\n\na1"},{"role":"user","content":"q2"},{"role":"assistant","content":"<think>r2</think>a2"}], enable_thinking=True)
add("think_off_prompt", [{"role":"user","content":"q"}], add_generation_prompt=True, enable_thinking=False)
add("reasoning_field_prompt", [{"role":"user","content":"q"},{"role":"assistant","content":"a","reasoning_content":"because"},{"role":"user","content":"q2"}], add_generation_prompt=True)
add("whitespace_content", [{"role":"system","content":"  \n sys \n "},{"role":"user","content":"\n\nhi\n\n"},{"role":"assistant","content":"  \tans \n"}])
add("unicode_heavy", [{"role":"user","content":"日本語 🙂 \u200b \"quotes\" 'single' \\back {% raw %} {{x}}"},{"role":"assistant","content":"Ответ ✓ 🎉"}])
add("long_conv", [{"role":r,"content":f"m{i}"} for i,r in enumerate(["user","assistant"]*6)], add_generation_prompt=True)
add("system_only", [{"role":"system","content":"S"}], add_generation_prompt=True)
add("developer_role", [{"role":"developer","content":"dev msg"},{"role":"user","content":"hi"}], add_generation_prompt=True)
add("tools_no_calls", [{"role":"system","content":"You can use tools."},{"role":"user","content":"hi"}], tools=TOOLS, add_generation_prompt=True)
add("custom_tokens", [{"role":"user","content":"x"},{"role":"assistant","content":"y"}], bos_token="<|bos|>", eos_token="<|eos|>")
add("date_kwargs", [{"role":"user","content":"date?"}], add_generation_prompt=True, date_string="01 Jan 2025", builtin_tools=["code_interpreter"], reasoning_effort="high")
add("tool_in_middle_name", [{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"function":{"name":"noargs","arguments":{}}}]},{"role":"tool","name":"noargs","content":"{\"ok\": true}"},{"role":"assistant","content":"done"}], tools=TOOLS)
add("ipython_role", [{"role":"user","content":"x"},{"role":"ipython","content":"out"}], add_generation_prompt=True)


def main():
    variants = {}
    for vn, v in V:
        v2 = copy.deepcopy(v)
        v2.setdefault("bos_token", "<s>")
        v2.setdefault("eos_token", "</s>")
        v2.setdefault("add_generation_prompt", False)
        v2.setdefault("tools", None)
        v2["documents"] = None
        variants[vn] = v2
    results = []
    for f in sorted(glob.glob(os.path.join(D, "*.jinja"))):
        src = open(f, encoding="utf-8").read()
        for vn, v in variants.items():
            r = render(src, copy.deepcopy(v))
            entry = {"template": os.path.basename(f), "variant": vn, "ok": r["ok"]}
            if r["ok"]:
                entry["sha256"] = hashlib.sha256(r["text"].encode("utf-8")).hexdigest()
                entry["length"] = len(r["text"])
                entry["spans"] = r["spans"]
            else:
                entry["error_type"] = r["error_type"]
                entry["error"] = r["error"]
            results.append(entry)
    json.dump({"variants": variants, "results": results}, sys.stdout, ensure_ascii=False, indent=0)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
