#!/usr/bin/env python3
"""Generates constructs.json: templates rendered by Python jinja2 configured exactly like transformers'
chat templates (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, generation tag,
json.dumps-based tojson, raise_exception, strftime_now fixed at 2026-01-15 12:00:00).

Run from this folder with Python 3.11 + jinja2 3.1:  python3 gen_cases.py > constructs.json
The C# tests (ConstructTests) render the same cases and compare text, spans, error type, message and line.
"""
import json
import sys
import traceback
from contextlib import contextmanager
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment


class AssistantTracker(Extension):
    tags = {"generation"}

    def __init__(self, environment):
        super().__init__(environment)
        environment.extend(activate_tracker=self.activate_tracker)
        self._rendered_blocks = None
        self._generation_indices = None

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    @jinja2.pass_eval_context
    def _generation_support(self, context, caller):
        rv = caller()
        if self._rendered_blocks is not None:
            start = len("".join(self._rendered_blocks))
            self._generation_indices.append((start, start + len(rv)))
        return rv

    @contextmanager
    def activate_tracker(self, rendered_blocks, generation_indices):
        try:
            self._rendered_blocks = rendered_blocks
            self._generation_indices = generation_indices
            yield
        finally:
            self._rendered_blocks = None
            self._generation_indices = None


NOW = datetime(2026, 1, 15, 12, 0, 0)


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(src, variables, trim_blocks=True, lstrip_blocks=True):
    env = make_env()
    env.trim_blocks = trim_blocks
    env.lstrip_blocks = lstrip_blocks
    try:
        t = env.from_string(src)
    except jinja2.TemplateSyntaxError as e:
        return {"ok": False, "error_type": type(e).__name__, "error": e.message, "line": e.lineno}
    except SyntaxError as e:  # break/continue outside a loop fail when Python compiles the generated code
        return {"ok": False, "error_type": type(e).__name__, "error": e.msg, "line": None}
    blocks, idx = [], []
    try:
        with env.activate_tracker(blocks, idx):
            for b in t.generate(**variables):
                blocks.append(b)
    except Exception as e:  # noqa: BLE001 - we record whatever jinja2 raises
        line = None
        for fr in traceback.extract_tb(e.__traceback__):
            if fr.filename == "<template>":
                line = fr.lineno
        return {"ok": False, "error_type": type(e).__name__, "error": str(e), "line": line}
    return {"ok": True, "text": "".join(blocks), "spans": sorted([list(x) for x in idx])}


CASES = []


def case(name, template, variables=None, **options):
    CASES.append((name, template, variables or {}, options))


MSGS = [
    {"role": "system", "content": "sys"},
    {"role": "user", "content": "hi 🙂"},
    {"role": "assistant", "content": "yo ✓", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1, "b": [1.5, None, True]}}}]},
]

# --- whitespace control, trim_blocks / lstrip_blocks -------------------------------------------------
case("ws_trim_blocks", "{% if true %}\nA\n{% endif %}\nB")
case("ws_lstrip", "x\n    {% if true %}\n    A\n    {% endif %}\ny")
case("ws_lstrip_comment", "x\n    {# c #}\ny")
case("ws_lstrip_var_not_stripped", "x\n    {{ 1 }}\ny")
case("ws_minus_left", "a   \n  {%- if true %}b{% endif %}")
case("ws_minus_right", "{% if true -%}   \n  b{% endif %}")
case("ws_var_minus", "a  {{- 1 -}}  b")
case("ws_plus_left", "x\n    {%+ if true %}A{% endif %}")
case("ws_plus_right", "{% if true +%}\nA{% endif %}")
case("ws_comment_minus", "a  {#- c -#}  b")
case("ws_comment_trim", "a{# c #}\nb")
case("ws_tabs", "x\n\t \t{% if true %}\n\tA\n{% endif %}")
case("ws_first_line_lstrip", "   {% if true %}A{% endif %}")
case("ws_after_trimmed_newline", "{% if true %}\n   {% if true %}X{% endif %}\n{% endif %}")
case("ws_crlf", "{% if true %}\r\nA\r\n{% endif %}\r\nB\r\n")
case("ws_trailing_newline", "A\n")
case("ws_two_trailing_newlines", "A\n\n")
case("ws_cr_only", "A\rB\r")
case("ws_block_end_newline_var", "{{ 'x' }}\nY")
case("ws_multiline_tag", "{%\nif true\n%}\nA{% endif %}")
case("raw_block", "{% raw %}{{ not }} {% evaluated %}{% endraw %}")
case("raw_ws", "x\n  {%- raw -%}  {{ a }}  {%- endraw -%}  \ny")
case("raw_lstrip", "x\n    {% raw %}R\n    {% endraw %}\ny")
case("comment_multiline", "a{#\n multi\n line\n#}b")
case("data_braces", "{ } {x} }} %} #}")

# --- literals, printing, str() and repr() ---------------------------------------------------------
case("lit_numbers", "{{ 1 }} {{ 1.5 }} {{ 1e3 }} {{ 1_000 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 2.5e-3 }} {{ 1E5 }}")
case("lit_floats_repr", "{{ 1.0 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1/3 }} {{ 2/3 }} {{ 0.1 + 0.2 }} {{ 1e22 }} {{ 123456789.123456789 }} {{ -0.0 }} {{ 1.5e-7 }} {{ 1e300*1e10 }} {{ -(1e300*1e10) }} {{ 5e-324 }} {{ 1.7976931348623157e308 }}")
case("lit_strings", "{{ 'a\\'b' }}|{{ \"q\\\"q\" }}|{{ 'tab\\there' }}|{{ 'nl\\nx' }}|{{ '\\u00e9\\x41\\101' }}|{{ 'a' 'b' \"c\" }}|{{ '\\q' }}|{{ 'é\\é' }}")
case("lit_bools_none", "{{ true }} {{ True }} {{ false }} {{ False }} {{ none }} {{ None }}")
case("lit_list_tuple_dict", "{{ [1, 'a', none, true, 1.5] }} {{ (1,) }} {{ () }} {{ (1, 2,) }} {{ {'a': 1, 'b': [1, {'c': none}]} }} {{ [] }} {{ {} }} {{ [1,] }}")
case("repr_strings", "{{ [\"it's\", 'a\"b', 'x\\ny', 'tab\\t', '\\x01', 'é', '\\u200b', '\\\\', 'both\\'\"', '🙂', '\\x7f', '\\xa0'] }}")
case("repr_nested", "{{ {'k': ('t', [1.0, -2])} }} {{ [[], [[]], {}] }}")
case("print_stmt", "{% print 1, 'a' %}")

# --- operators ------------------------------------------------------------------------------------
case("arith", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7 / 2 }} {{ 6 / 2 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1 + 2 * 3 - 4 }} {{ (1 + 2) * 3 }} {{ 2 * 3 ** 2 }}")
case("arith_bool", "{{ true + true }} {{ true * 3 }} {{ 1 + 1.5 }} {{ -true }} {{ +1.5 }} {{ 10 - 2.5 }}")
case("pow_assoc", "{{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ (-2) ** 2 }} {{ 2 ** 0.5 }}")
case("concat", "{{ 'a' ~ 1 ~ none ~ true ~ [1] ~ 1.5 ~ x }}")
case("str_plus", "{{ 'a' + 'b' }} {{ [1] + [2] }} {{ (1,) + (2,) }} {{ 'ab' * 3 }} {{ [1] * 2 }} {{ 3 * 'x' }} {{ 'x' * 0 }} {{ 'x' * -1 }}")
case("compare", "{{ 1 < 2 }} {{ 2 <= 2 }} {{ 3 > 2 > 1 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ (1, 2) == (1, 2) }} {{ [1] == (1,) }} {{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' == 'a' }} {{ none == none }} {{ 1 != 2 }} {{ {'a': 1} == {'a': 1} }}")
case("compare_unicode_order", "{{ '\\uffff' < '🙂' }} {{ 'Z' < 'a' }} {{ 'é' > 'z' }}")
case("in_ops", "{{ 'a' in 'abc' }} {{ 'x' in 'abc' }} {{ 1 in [1, 2] }} {{ 3 not in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 1.0 in [1] }} {{ 2 in range(3) }} {{ 'bc' in 'abcd' }} {{ '' in 'a' }}")
case("logic_operands", "{{ 1 and 'x' }}|{{ 0 and 'x' }}|{{ 0 or 'y' }}|{{ none or [] }}|{{ '' and 3 }}|{{ not 0 }}|{{ not 'a' }}|{{ [] or {} or 'last' }}")
case("truthiness", "{% for v in [0, 1, 0.0, 0.5, '', 'a', [], [0], {}, {'a': 1}, none, true, false] %}{{ 'T' if v else 'F' }}{% endfor %}")
case("cond_expr", "{{ 'a' if true else 'b' }} {{ 'a' if false else 'b' }} {{ 'a' if false }}| {{ ('x' if false) is defined }} {{ 1 if 0 else 2 if 0 else 3 }}")
case("not_precedence", "{{ not 1 == 2 }} {{ not true and false }} {{ not (true and false) }} {{ -1|abs }} {{ - 1 + 2 }}")
case("filter_precedence", "{{ 'ab'|upper ~ 'c' }} {{ -3|abs }} {{ [1,2]|length + 1 }} {{ 1 + [1,2]|length }} {{ 'x' ~ 'y'|upper }}")
case("test_precedence", "{{ 1 is number and 'a' is string }} {{ not 1 is string }} {{ 1 is not string }} {{ x is defined or true }}")

# --- variables, attributes, items, slicing --------------------------------------------------------
case("getattr_dict", "{{ d.a }} {{ d['a'] }} {{ d.b.c }} {{ d['b']['c'] }} {{ d.missing }}| {{ d.items is callable }} {{ (d.items|string)[:26] }}", {"d": {"a": 1, "b": {"c": 2}, "items": "ITEMS"}})
case("dict_key_shadowed_by_method", "{{ d['items'] }} {{ d.get('items') }} {{ d.keys()|list }}", {"d": {"items": "I", "keys": "K"}})
case("getitem_list", "{{ l[0] }} {{ l[-1] }} {{ l[5] }}| {{ l.0 }} {{ l[1:] }} {{ l[:-1] }} {{ l[::2] }} {{ l[::-1] }} {{ l[5:] }} {{ l[-10:2] }} {{ l[true] }}", {"l": [1, 2, 3, 4]})
case("slice_string", "{{ s[1:3] }} {{ s[-2:] }} {{ s[::-1] }} {{ s[0] }} {{ s[-1] }} {{ s[10] }}| {{ s[1::2] }}", {"s": "héllo🙂!"})
case("slice_tuple_range", "{{ (1, 2, 3)[1:] }} {{ range(10)[2:8:2]|list }} {{ range(10)[-1] }} {{ range(5)[::-1]|list }}")
case("string_len_codepoints", "{{ s|length }} {{ s|count }} {{ s|list }} {% for c in s %}[{{ c }}]{% endfor %}", {"s": "a🙂é"})
case("undefined_print", "[{{ x }}] [{{ x|length }}] [{% for a in x %}1{% endfor %}] {{ x is defined }} {{ x is undefined }} {{ not x }} {{ x == x }}")
case("undefined_member_of_defined", "{{ d.x }}|{{ d.x is defined }}|{{ d['x'] is undefined }}", {"d": {"a": 1}})
case("none_members", "{{ n.x }}|{{ n['x'] }}|{{ n.x is defined }}", {"n": None})
case("int_members", "{{ (5).real }} {{ (5).imag }} {{ (5).bit_length() }} {{ (2.5).is_integer() }} {{ (2.0).is_integer() }}")

# --- filters --------------------------------------------------------------------------------------
case("f_trim", "[{{ '  a b  '|trim }}] [{{ 'xxaxx'|trim('x') }}] [{{ '\\n\\ta\\u3000'|trim }}]")
case("f_length", "{{ [1,2]|length }} {{ {'a':1}|length }} {{ 'abc'|count }} {{ range(4)|length }}")
case("f_items", "{% for k, v in d|items %}{{ k }}={{ v }};{% endfor %}", {"d": {"b": 1, "a": 2}})
case("f_selectattr", "{{ l|selectattr('r', 'equalto', 'u')|list }} {{ l|selectattr('x')|list }} {{ l|rejectattr('r', 'eq', 'u')|map(attribute='r')|list }} {{ l|selectattr('x', 'defined')|list|length }}", {"l": [{"r": "u", "x": 1}, {"r": "a", "x": 0}, {"r": "u"}]})
case("f_select", "{{ [1, 2, 3, 4]|select('odd')|list }} {{ [1, 2, 3, 4]|reject('even')|list }} {{ [0, 1, '', 'a']|select|list }} {{ [1, 5, 10]|select('gt', 3)|list }} {{ ['a', 'b']|select('in', 'abc')|list }}")
case("f_map", "{{ ['a', 'b']|map('upper')|list }} {{ l|map(attribute='n')|list }} {{ l|map(attribute='z', default='d')|list }} {{ [1, 2]|map('string')|join(',') }} {{ [' a ']|map('trim')|list }} {{ [[1, 2]]|map('join', '-')|list }}", {"l": [{"n": 1}, {"n": 2}]})
case("f_join", "{{ [1, 'a', none]|join }} {{ ['a', 'b']|join(', ') }} {{ l|join('/', attribute='n') }} {{ 'abc'|join('.') }} {{ {'x': 1, 'y': 2}|join(',') }}", {"l": [{"n": 1}, {"n": 2}]})
case("f_default", "{{ x|default('d') }} {{ none|default('d') }} {{ ''|default('d', true) }} {{ 0|d(5, true) }} {{ 'v'|d('d') }} {{ x|default }}|{{ false|default('d', boolean=true) }}")
case("f_first_last", "{{ [1, 2]|first }} {{ [1, 2]|last }} {{ 'ab'|first }} {{ 'ab'|last }} {{ []|first }}|{{ {'a': 1, 'b': 2}|last }} {{ range(3)|last }}")
case("f_replace", "{{ 'a-b-c'|replace('-', '+') }} {{ 'a-b-c'|replace('-', '+', 1) }} {{ 'abc'|replace('', '.') }} {{ 5|replace('5', 'five') }}")
case("f_string_int_float", "{{ 1|string }} {{ [1]|string }} {{ '42'|int }} {{ '42.7'|int }} {{ 'x'|int }} {{ 'x'|int(5) }} {{ '0x1A'|int(0, 16) }} {{ '0b11'|int(base=0) }} {{ ' 7 '|int }} {{ '1_000'|int }} {{ 3.9|int }} {{ -3.9|int }} {{ '3'|float }} {{ 'a'|float }} {{ '1e3'|float }} {{ 2|float }} {{ 'inf'|float }} {{ true|int }}")
case("f_case", "{{ 'hELLO wORLD'|lower }} {{ 'abc'|upper }} {{ 'hELLO wORLD'|capitalize }} {{ 'hello world-foo(bar) [x] <y'|title }} {{ 'ß'|upper }} {{ \"it's o'neil\"|title }}")
case("f_list", "{{ 'ab'|list }} {{ {'a': 1}|list }} {{ range(3)|list }} {{ (1, 2)|list }}")
case("f_dictsort", "{{ d|dictsort }} {{ d|dictsort(true) }} {{ d|dictsort(by='value') }} {{ d|dictsort(reverse=true) }}", {"d": {"b": 1, "A": 3, "a": 2}})
case("f_safe", "{{ '<b>'|safe }} {{ ('<b>'|safe) ~ '<i>' }} {{ '<b>'|safe is escaped }} {{ '<b>'|e }}")
case("f_markup_add", "{{ ('<b>'|safe) + '<i>' }} {{ '<i>' + ('<b>'|safe) }}")
case("f_unique", "{{ ['a', 'A', 'b', 'a']|unique|list }} {{ ['a', 'A']|unique(true)|list }} {{ l|unique(attribute='k')|list }}", {"l": [{"k": 1}, {"k": 1, "z": 2}, {"k": 2}]})
case("f_abs_round", "{{ -1.5|abs }} {{ -3|abs }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 3|round }} {{ 2.5|round(0, 'floor') }} {{ 2.1|round(0, 'ceil') }} {{ 1234|round(-2) }} {{ 0.125|round(2) }} {{ 1.005|round(2) }} {{ -0.5|round }}")
case("f_sort", "{{ [3, 1, 2]|sort }} {{ ['b', 'A', 'a']|sort }} {{ ['b', 'A', 'a']|sort(case_sensitive=true) }} {{ [3, 1]|sort(reverse=true) }} {{ l|sort(attribute='a')|map(attribute='b')|list }} {{ l|sort(attribute='a,b')|map(attribute='b')|list }}", {"l": [{"a": 2, "b": "x"}, {"a": 1, "b": "z"}, {"a": 1, "b": "y"}]})
case("f_batch", "{{ [1, 2, 3, 4, 5]|batch(2)|list }} {{ [1, 2, 3]|batch(2, 'x')|list }}")
case("f_slice", "{{ [1, 2, 3, 4, 5]|slice(2)|list }} {{ [1, 2, 3, 4]|slice(3, 0)|list }}")
case("f_wordcount", "{{ 'a b  c'|wordcount }} {{ 'hello, world! foo_bar 12'|wordcount }} {{ ''|wordcount }}")
case("f_center", "[{{ 'hello'|center(11) }}] [{{ 'hi'|center(5) }}] [{{ 'hi'|center(6) }}] [{{ 'hi'|center(7) }}] [{{ 'toolong'|center(3) }}]")
case("f_indent", "{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}|{{ 'a\\nb'|indent('> ') }}|{{ 'x'|indent(first=true) }}")
case("f_format", "{{ '%s-%d-%05.2f|%r|%x|%5s|%-5s|%+d|%o|%e|%g|%G|%%' % ('a', 3, 3.14159, 'q', 255, 'ab', 'ab', 5, 8, 12345.678, 0.00001234, 1e20) }} {{ '%(a)s/%(b)03d' % {'a': 1, 'b': 7} }} {{ '%s'|format(1) }} {{ '%s %s'|format(1, 2) }} {{ '%(x)s'|format(x='kw') }} {{ '%c%c' % (65, 'b') }} {{ '%.3s' % 'abcdef' }} {{ '%5.1f|%-8.3e|%#x' % (2.25, 1234.5, 255) }}")
case("f_format_g", "{{ '%g %g %g %g %g %g' % (100000, 1000000, 0.0001, 0.00001, 1.5, 123456789) }} {{ '%.2g|%.10g|%#g' % (0.000123, 1/3, 1.0) }}")
case("f_tojson", "{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ 'é🙂'|tojson }}|{{ 'é🙂'|tojson(ensure_ascii=true) }}|{{ d|tojson(sort_keys=true, separators=(',', ':')) }}|{{ [1, 2]|tojson(indent='\\t') }}|{{ {'n': none, 'f': 1.0, 't': true, 'e': [], 'o': {}}|tojson }}|{{ 'a\"b\\\\c\\n\\u0001\\u007f'|tojson }}|{{ (1e300*1e10)|tojson }}", {"d": {"z": 1, "a": [1.5, "x", None]}})
case("f_tojson_positional_is_ensure_ascii", "{{ 'é'|tojson(2) }}|{{ {'a': 1}|tojson(false, 0) }}")
case("f_tojson_keys", "{{ {1: 'a', 2.5: 'b', true: 'c', none: 'd'}|tojson }}")
case("f_min_max_sum", "{{ [3, 1, 2]|min }} {{ [3, 1, 2]|max }} {{ ['b', 'A']|max }} {{ ['b', 'A']|max(case_sensitive=true) }} {{ [1, 2, 3]|sum }} {{ l|sum(attribute='n') }} {{ [1.5, 2]|sum(start=10) }} {{ []|min }}|{{ l|max(attribute='n') }}", {"l": [{"n": 1}, {"n": 2}]})
case("f_groupby", "{% for g in l|groupby('a') %}{{ g.grouper }}:{{ g.list|map(attribute='b')|join(',') }};{% endfor %} {{ (l|groupby('a'))[0] }}", {"l": [{"a": 2, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "z"}]})
case("f_reverse", "{{ 'abc'|reverse }} {{ [1, 2, 3]|reverse|list }} {{ (1, 2)|reverse|list }}")
case("f_truncate", "{{ 'Hello World foo'|truncate(9) }}|{{ 'Hello World foo bar baz'|truncate(9, true) }}|{{ 'Hello World'|truncate(20) }}|{{ 'Hello World foo bar'|truncate(10, false, '!!', 0) }}")
case("f_misc", "{{ '<b>a</b>  b &amp; c'|striptags }}|{{ {'a': 'x y', 'b': none, 'c': '<'}|xmlattr }}|{{ 'a b/c'|urlencode }}|{{ {'a': 'x y', 'b': 'é'}|urlencode }}|{{ 1500|filesizeformat }}|{{ 1|filesizeformat }}|{{ 2048|filesizeformat(true) }}|{{ 'a'|attr('upper') is callable }}|{{ '<&>'|forceescape }}")
case("filter_block", "{% filter upper %}abc {{ 'd' }}{% endfilter %}|{% filter trim|replace('a', 'b') %}  aa  {% endfilter %}|{% filter indent(2, true) %}x\ny{% endfilter %}")

# --- tests ----------------------------------------------------------------------------------------
case("t_types", "{{ 'a' is string }} {{ 1 is number }} {{ true is number }} {{ true is integer }} {{ 1 is integer }} {{ 1.0 is float }} {{ {} is mapping }} {{ [] is mapping }} {{ 'a' is sequence }} {{ [] is sequence }} {{ {} is sequence }} {{ 1 is sequence }} {{ 'a' is iterable }} {{ none is iterable }} {{ 1 is iterable }} {{ true is boolean }} {{ 1 is boolean }} {{ false is false }} {{ 0 is false }} {{ true is true }} {{ none is none }} {{ x is none }}")
case("t_undefined_types", "{{ x is sequence }} {{ x is iterable }} {{ x is callable }} {{ x is string }} {{ x is mapping }}")
case("t_values", "{{ 3 is divisibleby 3 }} {{ 3 is divisibleby(2) }} {{ 3 is odd }} {{ 2 is even }} {{ 'a' is in 'abc' }} {{ 1 is eq 1 }} {{ 1 is equalto 2 }} {{ 1 is ne 1 }} {{ [1, 2, 1]|select('==', 1)|list }} {{ [1, 2]|reject('!=', 2)|list }} {{ 1 is lt 2 }} {{ 1 is gt 2 }} {{ 2 is ge 2 }} {{ 2 is le 1 }} {{ 2 is greaterthan 1 }} {{ 2 is lessthan 1 }} {{ none is sameas none }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ 'a' is escaped }} {{ 'upper' is filter }} {{ 'nope' is filter }} {{ 'odd' is test }} {{ range is callable }} {{ 'a' is callable }}")
case("t_not", "{{ 1 is not none }} {{ x is not defined }} {{ not x is defined }} {{ 'a' is not in 'b' }}")

# --- control flow ---------------------------------------------------------------------------------
case("if_elif_else", "{% for v in [1, 2, 3] %}{% if v == 1 %}one{% elif v == 2 %}two{% else %}other{% endif %};{% endfor %}")
case("for_loop_vars", "{% for i in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.depth }}{{ loop.depth0 }}|{% endfor %}")
case("for_prev_next", "{% for i in [1, 2, 3] %}[{{ loop.previtem }}/{{ loop.nextitem }}]{% endfor %}")
case("for_cycle_changed", "{% for i in range(5) %}{{ loop.cycle('a', 'b', 'c') }}{{ loop.changed(i // 2) }} {% endfor %}")
case("for_filter", "{% for x in [1, 2, 3, 4, 5] if x is odd %}{{ loop.index }}/{{ loop.length }}:{{ x }}{{ loop.last }} {% endfor %}")
case("for_filter_lazy", "{% set ns = namespace(on=true) %}{% for x in [1, 2, 3] if ns.on %}{{ x }}{% set ns.on = false %}{% endfor %}")
case("for_filter_lazy_last", "{% set ns = namespace(on=true) %}{% for x in [1, 2, 3] if ns.on %}{{ x }}{{ loop.last }}{% set ns.on = false %}{% endfor %}")
case("for_else", "{% for x in [] %}a{% else %}empty{% endfor %}|{% for x in [1] if false %}a{% else %}filtered{% endfor %}|{% for x in [1] %}a{% else %}no{% endfor %}")
case("for_unpack", "{% for a, b in [[1, 2], (3, 4), 'xy'] %}{{ a }}{{ b }};{% endfor %}{% for (a, b), c in [((1, 2), 3)] %}{{ a }}{{ b }}{{ c }}{% endfor %}")
case("for_dict", "{% for k in d %}{{ k }}{% endfor %}|{% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %}|{% for v in d.values() %}{{ v }}{% endfor %}", {"d": {"b": 1, "a": 2}})
case("for_string_and_range", "{% for c in 'ab' %}{{ c }}.{% endfor %}{% for i in range(2, 8, 3) %}{{ i }}{% endfor %}{% for i in range(3, 0, -1) %}{{ i }}{% endfor %}")
case("for_break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{{ loop.last }},{% endfor %}")
case("for_break_in_set_block", "{% for x in range(3) %}{% set b %}{{ x }}{% if x == 1 %}{% break %}{% endif %}{% endset %}[{{ b }}]{% endfor %}")
case("for_nested_loop", "{% for i in [1, 2] %}{% for j in 'ab' %}{{ loop.index }}{{ i }}{{ j }} {% endfor %}{{ loop.index }}|{% endfor %}")
case("for_recursive", "{% for item in tree recursive %}{{ item.n }}{% if item.c %}[{{ loop(item.c) }}]{% endif %}{{ loop.depth }}{% endfor %}", {"tree": [{"n": "a", "c": [{"n": "b", "c": [{"n": "c"}]}]}, {"n": "d"}]})
case("for_length_generator", "{% for x in [1, 2, 3]|map('string') %}{{ loop.length }}{{ x }}{{ loop.revindex }}{% endfor %}")
case("for_nextitem_generator", "{% for x in [1, 2, 3]|select %}{{ loop.nextitem }}{{ x }}{% endfor %}")

# --- scoping --------------------------------------------------------------------------------------
case("scope_loop_local", "{% for i in [1, 2] %}[{{ x }}]{% set x = i %}({{ x }}){% endfor %}<{{ x }}>")
case("scope_loop_outer", "{% set x = 5 %}{% for i in [1, 2] %}[{{ x }}]{% set x = i %}({{ x }}){% endfor %}<{{ x }}>")
case("scope_loop_fresh_each_iteration", "{% set x = 5 %}{% for i in [1, 2] %}{% if i == 2 %}[{{ x }}]{% endif %}{% set x = i %}{% endfor %}<{{ x }}>")
case("scope_if_no_scope", "{% if true %}{% set x = 3 %}{% endif %}{{ x }}")
case("scope_loop_var_no_leak", "{% set i = 9 %}{% for i in [1, 2] %}{% endfor %}{{ i }}")
case("scope_namespace", "{% set ns = namespace(a=1, b='x') %}{% for x in [1, 2] %}{% set ns.a = ns.a + x %}{% endfor %}{{ ns.a }}{{ ns.b }} {{ ns }}")
case("scope_macro_late_binding", "{% macro m() %}{{ y }}{% endmacro %}{% set y = 7 %}{{ m() }}")
case("scope_macro_local_set", "{% macro m() %}{% set y = 2 %}{{ y }}{% endmacro %}{% set y = 7 %}{{ m() }}{{ y }}")
case("scope_macro_in_loop", "{% for i in [1, 2] %}{% macro m() %}<{{ i }}>{% endmacro %}{{ m() }}{% endfor %}|{{ m is defined }}")
case("scope_set_block", "{% set b %}{% set x = 'a' %}{{ x }}!{% endset %}{{ b }}|{{ x }}|{% set t | upper %}up{% endset %}{{ t }}")
case("scope_with", "{% set a = 0 %}{% with a = 1, b = a %}{% set x = 2 %}{{ a }}{{ b }}{{ x }}{% endwith %}{{ a }}{{ x }}")
case("scope_filter_block", "{% filter upper %}{% set x = 'a' %}{{ x }}{% endfilter %}{{ x }}")
case("scope_for_else", "{% set y = 0 %}{% for x in [] %}{% else %}{% set y = 1 %}{{ y }}{% endfor %}{{ y }}")
case("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = 1, 2 %}{{ c }}{% set (d, e) = [3, 4] %}{{ d }}{{ e }}")
case("scope_vars_override_globals", "{{ range }}", {"range": "mine"})
case("context_var_then_set", "{{ x }}{% set x = 2 %}{{ x }}", {"x": 1})

# --- macros, call blocks --------------------------------------------------------------------------
case("macro_args", "{% macro m(a, b=2, c=a) %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ m(1) }} {{ m(1, 3) }} {{ m(1, c=5) }} {{ m(b=4, a=0) }}")
case("macro_varargs_kwargs", "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, z=4) }} {{ m(1) }}")
case("macro_missing_arg", "{% macro m(a, b) %}[{{ a }}][{{ b }}]{{ b is defined }}{% endmacro %}{{ m(1) }}")
case("macro_recursion", "{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(4) }}")
case("macro_attrs", "{% macro m(a, b) %}{{ varargs }}{% endmacro %}{{ m.name }} {{ m.arguments }} {{ m.catch_varargs }} {{ m.catch_kwargs }} {{ m.caller }} {{ m }}")
case("macro_returns_string", "{% macro m() %}x{% endmacro %}{{ m() ~ 'y' }} {{ m()|length }} {{ m() is string }}")
case("call_block", "{% macro w(t) %}<{{ t }}:{{ caller() }}>{% endmacro %}{% call w('a') %}body {{ 1 + 1 }}{% endcall %}")
case("call_block_args", "{% macro l(items) %}{% for i in items %}{{ caller(i, loop.index) }}{% endfor %}{% endmacro %}{% call(x, n) l(['a', 'b']) %}[{{ n }}:{{ x }}]{% endcall %}")
case("macro_no_caller", "{% macro m() %}{{ caller is defined }}{% endmacro %}{{ m() }}")
case("named_block", "a{% block b %}in block {{ 1 }}{% endblock %}z")

# --- globals --------------------------------------------------------------------------------------
case("g_range", "{{ range(3) }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }} {{ range(0)|list }} {{ range(3)|length }} {{ 2 in range(3) }}")
case("g_dict", "{{ dict(a=1, b=2) }} {{ dict({'c': 3}, d=4) }} {{ dict([('x', 1)]) }} {{ dict() }}")
case("g_namespace", "{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}{{ ns['a'] }}{{ ns.c }}|{{ ns.c is defined }}")
case("g_cycler_joiner", "{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}{{ c.current }}{% set j = joiner(' | ') %}{% for x in [1, 2, 3] %}{{ j() }}{{ x }}{% endfor %}")
case("g_strftime", "{{ strftime_now('%Y-%m-%d') }} {{ strftime_now('%d %b %Y') }} {{ strftime_now('%A %B %j %H:%M:%S %p %I %y %a %%') }}")

# --- Python methods -------------------------------------------------------------------------------
case("m_split", "{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(none, 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ 'a b c'.rsplit(maxsplit=1) }} {{ ''.split() }} {{ ''.split(',') }} {{ 'a\\nb\\r\\nc\\n'.splitlines() }} {{ 'x<sep>y'.split('<sep>')[1] }}")
case("m_strip", "[{{ '  x '.strip() }}] [{{ 'xxaxx'.lstrip('x') }}] [{{ 'xxaxx'.rstrip('x') }}] [{{ '\\n a \\n'.lstrip() }}] [{{ 'ab'.strip('') }}]")
case("m_find", "{{ 'abcabc'.find('c') }} {{ 'abcabc'.rfind('c') }} {{ 'abc'.find('z') }} {{ 'abcabc'.find('c', 3) }} {{ 'abcabc'.index('b') }} {{ 'aaa'.count('a') }} {{ 'aaaa'.count('aa') }} {{ '🙂ab'.find('b') }} {{ 'abcabc'.count('c', 0, 3) }}")
case("m_startswith", "{{ 'ab'.startswith('a') }} {{ 'ab'.startswith(('x', 'a')) }} {{ 'ab'.startswith('b', 1) }} {{ 'ab'.endswith('b') }} {{ 'ab'.endswith(('x',)) }} {{ 'ab'.endswith('a', 0, 1) }}")
case("m_case", "{{ 'ab cD'.upper() }} {{ 'AB'.lower() }} {{ 'hello world'.title() }} {{ \"they're bill's\".title() }} {{ 'hELLO'.capitalize() }} {{ 'aB'.swapcase() }} {{ 'ß'.casefold() }}")
case("m_is", "{{ '12'.isdigit() }} {{ '1a'.isdigit() }} {{ ''.isdigit() }} {{ 'ab'.isalpha() }} {{ 'a1'.isalnum() }} {{ ' \\t'.isspace() }} {{ 'ab'.islower() }} {{ 'AB'.isupper() }} {{ 'Ab Cd'.istitle() }} {{ '½'.isnumeric() }} {{ '²'.isdigit() }} {{ '²'.isdecimal() }} {{ 'abc'.isascii() }} {{ 'a_1'.isidentifier() }}")
case("m_misc", "{{ 'a-b'.replace('-', '+') }} {{ ','.join(['a', 'b']) }} {{ 'ab'.center(6, '*') }} {{ 'ab'.ljust(4, '.') }} {{ 'ab'.rjust(4) }} {{ '42'.zfill(5) }} {{ '-42'.zfill(5) }} {{ 'a=b=c'.partition('=') }} {{ 'a=b=c'.rpartition('=') }} {{ 'prefix_x'.removeprefix('prefix_') }} {{ 'x.txt'.removesuffix('.txt') }} {{ 'a\\tb'.expandtabs(4) }}")
case("m_format", "{{ '{} {}'.format(1, 'a') }} {{ '{0:>5}|{1:.2f}|{x!r}'.format('ab', 3.14159, x='q') }} {{ '{a[k]} {b.real}'.format(a={'k': 'v'}, b=3) }} {{ '{:08.3f}|{:,}|{:x}|{:^7}|{:*<5}|{:+d}|{:.1%}|{:e}'.format(3.14159, 1234567, 255, 'c', 'l', 5, 0.256, 12345.6789) }} {{ '{{literal}}'.format() }} {{ '{:>{w}}'.format('r', w=4) }}")
case("m_dict", "{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 0) }} {{ d.keys() }} {{ d.values() }} {{ d.items() }} {{ d.items()|list }} {{ d.copy() }} {{ 'a' in d.keys() }} {{ d.keys()|length }}", {"d": {"a": 1, "b": [2]}})
case("m_list", "{{ l.index(2) }} {{ l.count(1) }} {{ l.copy() }} {{ (1, 2, 1).count(1) }} {{ (1, 2).index(2) }}", {"l": [1, 2, 1]})

# --- generation blocks ----------------------------------------------------------------------------
case("gen_basic", "a{% generation %}bc{% endgeneration %}d{% generation %}{% endgeneration %}e")
case("gen_emoji", "🙂{% generation %}é🙂x{% endgeneration %}🙂{% generation %}y{% endgeneration %}")
case("gen_in_loop", "{% for m in msgs %}<{{ m.role }}>{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}", {"msgs": MSGS})
case("gen_scope", "{% set x = 'o' %}{% generation %}{{ x }}{% set x = 'a' %}{{ x }}{% endgeneration %}|{{ x }}")
case("gen_nested", "x{% generation %}a{% generation %}bb{% endgeneration %}c{% endgeneration %}")
case("gen_in_macro_quirk", "{% macro m() %}AB{% generation %}CD{% endgeneration %}{% endmacro %}xyz{{ m() }}")
case("gen_in_set_block_quirk", "12{% set s %}ab{% generation %}cd{% endgeneration %}{% endset %}345{{ s }}")
case("gen_whitespace", "x\n  {% generation %}\n  y\n  {% endgeneration %}\nz")

# --- realistic chat constructs ----------------------------------------------------------------------
case("chat_tool_calls", "{% for m in messages %}{% if m.tool_calls %}{% for tc in m.tool_calls %}{{ tc.function.name }}({{ tc.function.arguments|tojson }}){% endfor %}{% endif %}{{ m['content']|trim }}\n{% endfor %}", {"messages": MSGS})
case("chat_reasoning_split", "{% set c = m.content %}{{ c.split('</think>')[-1].lstrip('\\n') }}|{{ c.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}", {"m": {"content": "<think>\nplan\n</think>\n\nanswer"}})
case("chat_loop_reverse_index", "{% set ns = namespace(last=-1) %}{% for m in messages[::-1] %}{% set idx = (messages|length) - 1 - loop.index0 %}{% if ns.last == -1 and m.role == 'user' %}{% set ns.last = idx %}{% endif %}{% endfor %}{{ ns.last }}", {"messages": MSGS})
case("chat_content_parts", "{% for p in content %}{% if p.type == 'text' %}{{ p.text }}{% elif p['type'] == 'image' %}<img>{% endif %}{% endfor %}", {"content": [{"type": "text", "text": "hi"}, {"type": "image"}]})
case("chat_json_roundtrip_unicode", "{{ {'q': '日本語 \"x\" \\\\ 🙂'}|tojson }}")

# --- errors (type, message, line) ------------------------------------------------------------------
case("e_raise", "a\n{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}")
case("e_str_plus_int", "{{ 'a' + 1 }}")
case("e_int_plus_str", "line1\n{{ 1 + 'a' }}")
case("e_str_plus_dict", "{{ 'a' + {} }}")
case("e_list_plus_tuple", "{{ [1] + (1,) }}")
case("e_none_plus", "{{ none + 1 }}")
case("e_mul_float", "{{ 'a' * 2.0 }}")
case("e_compare", "{{ 'a' < 1 }}")
case("e_neg_str", "{{ -'a' }}")
case("e_div_zero", "{{ 1 / 0 }}")
case("e_floordiv_zero", "{{ 1 // 0 }}")
case("e_mod_zero", "{{ 1 % 0 }}")
case("e_float_div_zero", "{{ 1.0 / 0 }}")
case("e_in_string_int", "{{ 1 in 'abc' }}")
case("e_in_none", "{{ 1 in none }}")
case("e_unhashable", "{{ [1] in {'a': 1} }}")
case("e_undefined_attr", "{{ x.y }}")
case("e_undefined_plus", "{{ x + 1 }}")
case("e_undefined_call", "{{ x() }}")
case("e_undefined_item_of_dict", "{{ d.a.b }}", {"d": {}})
case("e_str_no_attr", "{{ 'abc'.foo.bar }}")
case("e_str_no_element", "{{ 'abc'[5].x }}")
case("e_namespace_missing", "{% set ns = namespace() %}{{ ns.x.y }}")
case("e_set_attr_non_namespace", "{% set x = 1 %}{% set x.y = 2 %}")
case("e_not_callable", "{{ 'abc'() }}")
case("e_none_not_callable", "{{ none() }}")
case("e_unpack_non_iterable", "{% for a, b in [1] %}{% endfor %}")
case("e_unpack_too_many", "{% for a, b in [[1, 2, 3]] %}{% endfor %}")
case("e_unpack_too_few", "{% for a, b in [[1]] %}{% endfor %}")
case("e_iter_int", "{% for a in 3 %}{% endfor %}")
case("e_iter_none", "{% for a in none %}{% endfor %}")
case("e_len_int", "{{ 3|length }}")
case("e_len_generator", "{{ [1, 2]|map('string')|length }}")
case("e_sort_mixed", "{{ [1, 'a']|sort }}")
case("e_tojson_undefined", "{{ {'a': x}|tojson }}")
case("e_tojson_tuple_key", "{{ {(1, 2): 1}|tojson }}")
case("e_security_append", "{{ [1].append(2) }}")
case("e_security_update", "{% set d = {} %}{{ d.update({'a': 1}) }}")
case("e_security_pop", "{{ {'a': 1}.pop('a') }}")
case("e_security_private", "{{ 'abc'.__class__() }}")
case("e_security_append_printed_is_empty", "[{{ [1].append }}]")
case("e_macro_too_many", "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}")
case("e_macro_kwarg", "{% macro m(a) %}{% endmacro %}{{ m(1, z=2) }}")
case("e_split_empty_sep", "{{ 'abc'.split('') }}")
case("e_index_not_found", "{{ 'abc'.index('z') }}")
case("e_list_index_not_found", "{{ [1].index(5) }}")
case("e_range_too_big", "{{ range(1000000) }}")
case("e_range_zero_step", "{{ range(1, 2, 0) }}")
case("e_int_filter_undefined", "{{ x|int }}")
case("e_abs_undefined", "{{ x|abs }}")
case("e_round_undefined", "{{ x|round }}")
case("e_dictsort_undefined", "{{ x|dictsort }}")
case("e_items_non_mapping", "{{ [1]|items|list }}")
case("e_last_generator", "{{ [1]|map('string')|last }}")
case("e_format_args", "{{ '%s %s' % (1,) }}")
case("e_format_extra", "{{ '%s' % (1, 2) }}")
case("e_format_type", "{{ '%d' % 'a' }}")
case("e_join_non_str", "{{ ','.join([1, 2]) }}")
case("e_filter_runtime_unknown", "{% if true %}{{ 'x'|nosuchfilter }}{% endif %}")
case("e_filter_unknown_in_false_branch_ok", "{% if false %}{{ 'x'|nosuchfilter }}{% endif %}ok")
case("e_deep_line", "a\nb\n{% for x in [1] %}\n  {% if true %}\n    {{ x + 'oops' }}\n  {% endif %}\n{% endfor %}")
case("e_in_macro_line", "{% macro m(v) %}\n\n{{ v.a.b }}\n{% endmacro %}\n{{ m({}) }}")
case("e_cycle_empty", "{% for x in [1] %}{{ loop.cycle() }}{% endfor %}")
case("e_slice_step_zero", "{{ [1, 2][::0] }}")

# --- syntax errors --------------------------------------------------------------------------------
case("s_unknown_tag", "{% foo %}")
case("s_unclosed_if", "{% if true %}\nabc")
case("s_unclosed_for", "{% for x in y %}{% if x %}{% endfor %}")
case("s_wrong_end", "{% if true %}{% endfor %}")
case("s_unknown_filter", "\n{{ 'x'|nosuchfilter }}")
case("s_unknown_test", "{{ 'x' is nosuchtest }}")
case("s_unexpected_char", "{{ a ! b }}")
case("s_unexpected_end_expr", "{{ 1 + }}")
case("s_missing_comment_end", "{# abc")
case("s_unbalanced", "{{ (1 }}")
case("s_unbalanced_bracket", "{{ [1) }}")
case("s_break_outside", "{% break %}")
case("s_continue_in_macro", "{% for x in [1] %}{% macro m() %}{% continue %}{% endmacro %}{% endfor %}")
case("s_chained_is", "{{ 1 is number is number }}")
case("s_non_default_after_default", "{% macro m(a=1, b) %}{% endmacro %}")
case("s_assign_const", "{% set true = 1 %}")
case("s_expected_name", "{{ a. }}")
case("s_raw_unclosed", "{% raw %}abc")
case("s_bad_escape", "{{ '\\x4' }}")

# --- inputs that exercise value conversion --------------------------------------------------------
case("in_json_types", "{{ v }} {{ v.i is integer }} {{ v.f is float }} {{ v.big }} {{ v.neg }} {{ v.e }}", {"v": {"i": 1, "f": 1.0, "big": 12345678901234, "neg": -0.5, "e": 1e-07}})
case("in_key_order", "{{ d }} {{ d|tojson }} {% for k, v in d.items() %}{{ k }}{% endfor %}", {"d": {"z": 1, "a": 2, "m": 3}})
case("in_unicode", "{{ s }}|{{ s|length }}|{{ s[3:] }}|{{ s|upper }}|{{ s|tojson }}", {"s": "ünï🙂 日本\u00a0x"})


# --- Markup, call blocks, argument unpacking, named blocks, self, assorted filters ----------------------
TRICKY_MSGS = [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi 🙂"},
               {"role": "assistant", "content": "yo", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
               {"role": "user", "content": "again"}]
TRICKY = [
 "{{ ('<b>'|safe) % '<i>' }}|{{ ('<b>%s'|safe) % ('<i>',) }}|{{ ('a<'|safe).replace('<', '>') }}|{{ ('a'|safe).upper() }}|{{ ('<'|safe) * 2 }}|{{ ('x'|safe).join(['<', '>']) }}",
 "{{ ('<b>'|safe)|replace('<', '[') }}|{{ ('<b>'|safe)|upper }}|{{ ('<b>'|safe)|trim }}|{{ ('<b>'|safe)|length }}|{{ ('<b>'|safe)|string }}|{{ ['<'|safe, '>']|join(',') }}|{{ ('<b>'|safe) ~ '<' }}",
 "{{ ('<b>'|safe) == '<b>' }}|{{ '<b>' in ('<b>'|safe) }}|{{ ('a'|safe)[0] }}|{{ ('ab'|safe)[::-1] }}|{{ ('a b'|safe).split() }}",
 "{{ ('{}'|safe).format('<') }}|{{ '{}'.format('<'|safe) }}|{{ '%s' % ('<'|safe) }}|{{ ('<'|safe)|e }}|{{ '<'|e|e }}",
 "{% macro outer() %}[{{ caller('a', 'b') }}]{% endmacro %}{% call(x, y) outer() %}{{ x }}-{{ y }}{{ varargs }}{% endcall %}",
 "{% macro m() %}{{ caller() }}{{ caller() }}{% endmacro %}{% set ns = namespace(n=0) %}{% call m() %}{% set ns.n = ns.n + 1 %}{{ ns.n }}{% endcall %}",
 "{% macro a() %}A{{ b() }}{% endmacro %}{% macro b() %}B{% endmacro %}{{ a() }}",
 "{% set x = 1 %}{% macro m(x=x + 1) %}{{ x }}{% endmacro %}{{ m() }}{{ m(5) }}",
 "{% for a in [1,2] %}{% for b in [3,4] %}{% if b == 4 %}{% break %}{% endif %}{{ a }}{{ b }}{% endfor %}{% endfor %}",
 "{% for x in [1,2,3] %}{% with y = x * 2 %}{% if y == 4 %}{% continue %}{% endif %}{{ y }}{% endwith %}{% endfor %}",
 "{% filter upper %}{% for x in 'ab' %}{{ x }}{% if x == 'a' %}{% endif %}{% endfor %}{% endfilter %}",
 "{{ [1,2,3]|map('string')|map('int')|sum }}|{{ ['a','b']|map('upper')|join }}|{{ {'a':1}|map('upper')|list }}",
 "{{ 'a' if none is none }}{{ 1 if 2 if 3 else 4 }}",
 "{% set a = [1, 2] %}{% set b = a %}{{ a is sameas b }}{{ [1] is sameas [1] }}",
 "{{ 'abc'|batch(2)|list }}|{{ 'abcdef'|slice(4)|list }}",
 "{{ range(10)|select('even')|map('string')|join(',') }}|{{ range(5)|reject('odd')|list }}|{{ range(3)|reverse|list }}",
 "{{ [3,2,1]|sort|first }}|{{ [[2,'b'],[1,'a']]|sort }}|{{ [[2,'b'],[1,'a']]|sort(attribute='1') }}|{{ [{'a':{'b':2}},{'a':{'b':1}}]|sort(attribute='a.b') }}",
 "{{ [none, 1]|select('none')|list }}|{{ [1,'a',[],{}]|select('string')|list }}|{{ [1, 2]|select('in', [2])|list }}",
 "{{ '%-10s|%10s|%.0f|%.1f|%i' % ('ab', 'cd', 0.5, 0.25, 3.9) }}",
 "{{ '%(a)s %(a)r' % {'a': 'x'} }}|{{ '%%%s%%' % 5 }}|{{ '%s' % none }}|{{ '%s' % [1,2] }}|{{ '%s %s' % ('a', [1]) }}",
 "{{ {'a': 1, 'b': 2}|dictsort|map('first')|list }}|{{ {'a': 1}.items()|map('last')|list }}",
 "{% set d = {'x': {'y': [1, {'z': 'deep'}]}} %}{{ d.x.y[1].z }}{{ d['x']['y'][-1]['z'] }}{{ d.x.y.1.z }}",
 "{{ 1 == 1 == 1 }}{{ 1 < 2 == 2 }}{{ 'a' ~ 'b' == 'ab' }}{{ 2 * 3 ~ 4 }}{{ 1 + 2 ~ 3 }}",
 "{{ '\\n'.join(['a', 'b']) }}|{{ 'a\\\\nb' }}|{{ \"\\x41\\u0042\\U00000043\" }}|{{ '\\101\\102' }}",
 "{{ [1,2,3][1:2][0] }}{{ 'abc'[-1:] ~ 'abc'[:-1] }}{{ [1,2,3][-2:] }}",
 "{{ 'x'.ljust(3) ~ '|' }}{{ 'x'.rjust(3, '0') }}{{ '12'.zfill(1) }}{{ 'abc'.center(2) }}",
 "{{ 'a b c'.split(' ', 1) }}{{ 'a  b'.split(' ') }}{{ ' '.join('abc') }}{{ 'abc'.startswith('') }}{{ ''.join([]) }}",
 "{{ {'b': 1, 'a': 2}|dictsort(false, 'value') }}{{ {'b': 1, 'B': 2}|dictsort(case_sensitive=true) }}",
 "{{ none|string }}{{ true|string }}{{ 1.0|string }}{{ [none]|string }}{{ (1,)|string }}",
 "{{ 10|filesizeformat }} {{ 1000|filesizeformat }} {{ 1000000|filesizeformat }} {{ 1024|filesizeformat(true) }} {{ 1e30|filesizeformat }}",
 "{{ 'x'|indent(2, true, true) }}|{{ ''|indent }}|{{ '\\n'|indent(first=true) }}|{{ 'a\\r\\nb'|indent }}",
 "{{ 'hello world'|truncate(5) }}|{{ 'hello world'|truncate(7, leeway=0) }}|{{ 'hello'|truncate(3, true, '') }}",
 "{{ '  a  '|trim|length }}{{ 'abc'|trim('ac') }}{{ '\\u3000x\\u3000'|trim }}",
 "{% set x = 5 %}{% if x is divisibleby(5) and x is odd %}ok{% endif %}",
 "{% for i in range(3) %}{{ loop.cycle(*['a','b']) }}{% endfor %}|{{ dict(**{'a': 1}) }}|{{ [1,2]|join(*[',']) }}",
 "{% macro m(a, b) %}{{ a }}{{ b }}{% endmacro %}{{ m(*[1, 2]) }}{{ m(**{'a': 3, 'b': 4}) }}{{ m(1, **{'b': 5}) }}",
 "{{ lipsum is defined }}{{ self is defined }}{{ caller is defined }}{{ varargs is defined }}{{ loop is defined }}",
 "{% set t = (1, 'a') %}{% set a, b = t %}{{ a }}{{ b }}{% for k, v in [t] %}{{ k }}{{ v }}{% endfor %}",
 "{{ x|default(none) is none }}{{ x|d(0) + 1 }}{{ x or 'fallback' }}{{ x and 'no' }}|",
 "{{ messages|selectattr('role', 'eq', 'user')|map(attribute='content')|first }}|{{ messages|map(attribute='role')|unique|list }}|{{ (messages|last).content }}|{{ messages[-1]['role'] }}",
 "{% for m in messages %}{% if loop.first and m.role != 'system' %}NO_SYS{% endif %}{% if not loop.last %},{% endif %}{% endfor %}",
 "{{ messages|length > 2 }}{{ messages[0].content|length }}{{ messages|rejectattr('tool_calls', 'defined')|list|length }}",
]
for _i, _t in enumerate(TRICKY):
    case(f"tricky_{_i:02d}", _t, {"messages": TRICKY_MSGS})
case("block_unscoped_sees_context_only", "{% for i in [1] %}{% block b %}[{{ i }}|{{ x }}]{% endblock %}{% endfor %}{% set x = 3 %}{{ self.b() }}", {"x": 9})
case("block_scoped", "{% for i in [1] %}{% block b scoped %}[{{ i }}]{% endblock %}{% endfor %}")
case("self_reference", "{{ self }}|{{ self.nope is defined }}")
case("block_twice", "{% block a %}A{% endblock %}{% block a %}B{% endblock %}")
case("lipsum_shape", "{{ lipsum(1, false, 5, 6)|wordcount >= 5 }}{{ lipsum() is string }}{{ lipsum is defined }}")

# --- number formatting and Unicode case mapping over many values -----------------------------------------
def numeric_cases(seed):
    import random
    rng = random.Random(seed)
    xs = [rng.random() * rng.choice([1, -1]) * 10 ** rng.randint(-30, 30) for _ in range(60)]
    xs += [0.5, 1.5, 2.5, 0.125, 0.375, 1e16, 9999999999999998.0, 1e-5, 123.456, 1 / 3, 100.0, 1e21, 1.1e-4, 5e-324, 2.675, 0.045]
    tpl = ("{% for x in xs %}{{ x }}|{{ '%.3f|%e|%g|%.12g|%10.4f|%-12.2e|%+.1f|%#.0f' % (x, x, x, x, x, x, x, x) }}|"
           "{{ x|round(2) }}|{{ x|round(0) }}|{{ x|round(-1) }}|{{ '{:.5}|{:.3e}|{:,.2f}|{:g}|{}'.format(x, x, x, x, x) }}|"
           "{{ x|tojson }}|{{ x // 1 }}|{{ x % 7 }}|{{ (x * 1000)|int if x|abs < 1e12 else 'big' }}\n{% endfor %}")
    case("num_random_floats", tpl, {"xs": xs})
    ints = [rng.randint(-10 ** 12, 10 ** 12) for _ in range(40)] + [0, 1, -1, 7, -7, 2 ** 53 + 1]
    tpl = ("{% for x in xs %}{{ x }}|{{ x // 3 }}|{{ x % 3 }}|{{ x // -3 }}|{{ x % -3 }}|{{ x / 3 }}|"
           "{{ '%5d|%x|%o|%+d|%08d' % (x, x, x, x, x) }}|{{ '{:,}|{:x}|{:>12}|{:e}'.format(x, x, x, x) }}|{{ x|round(-2) }}\n{% endfor %}")
    case("num_random_ints", tpl, {"xs": ints})


numeric_cases(11)
case("unicode_case_mapping",
     "{% for s in xs %}{{ s.upper() }}|{{ s.lower() }}|{{ s.title() }}|{{ s.capitalize() }}|{{ s.swapcase() }}|{{ s|title }}|"
     "{{ s|capitalize }}|{{ s.istitle() }}|{{ s.isupper() }}|{{ s.islower() }}|{{ s|wordcount }}|{{ s|upper }}|{{ s|lower }}\n{% endfor %}",
     {"xs": ["ǆungla", "ß straße", "İstanbul", "ﬁne ﬂow", "ΣΊΣΥΦΟΣ ΟΔΟΣ. Σ", "ǅemal", "hello World-wide web", "  mixed\tCASE  ",
             "ŉ", "ΐ", "ᾳ ᾼ", "Ⅻ ⅻ", "ǈ", "ⓐⒷ", "ა", "ǰ"]})

# --- options other than transformers' defaults --------------------------------------------------------
case("opt_no_trim", "{% if true %}\nA\n{% endif %}\nB", trim_blocks=False)
case("opt_no_lstrip", "x\n    {% if true %}\n    A\n    {% endif %}\ny", lstrip_blocks=False)
case("opt_neither", "x\n  {% if true %}\n  A {#c#}\n  {% endif %}\ny", trim_blocks=False, lstrip_blocks=False)


def whitespace_fuzz(count, seed):
    """Random mixes of text, whitespace and tags with every whitespace-control marker."""
    import random
    rng = random.Random(seed)
    texts = ["", " ", "  ", "\t", "\n", " \n", "\n  ", "\n\n", "a", " a ", "b\n", "\n c", "\t\n\t"]

    def tag_open(kind):
        return kind + rng.choice(["", "", "-", "+"]) + rng.choice(["", " "])

    def tag_close(kind):
        return rng.choice(["", " "]) + rng.choice(["", "", "-", "+"]) + kind

    for i in range(count):
        parts = []
        depth = 0
        for _ in range(rng.randint(2, 9)):
            parts.append(rng.choice(texts))
            r = rng.random()
            if r < 0.25:
                parts.append(tag_open("{{") + "'v'" + tag_close("}}").replace("+}}", "}}"))
            elif r < 0.4:
                parts.append(tag_open("{#") + "c" + tag_close("#}"))
            elif r < 0.55 and depth > 0:
                parts.append(tag_open("{%") + "endif" + tag_close("%}"))
                depth -= 1
            elif r < 0.75:
                parts.append(tag_open("{%") + "if true" + tag_close("%}"))
                depth += 1
            elif r < 0.85:
                parts.append(tag_open("{%") + "set x = 1" + tag_close("%}"))
            else:
                parts.append(tag_open("{%") + "raw" + tag_close("%}") + rng.choice(texts) + "{{ r }}" + rng.choice(texts) + tag_open("{%") + "endraw" + tag_close("%}"))
        parts.append(rng.choice(texts))
        while depth > 0:
            parts.append(tag_open("{%") + "endif" + tag_close("%}") + rng.choice(texts))
            depth -= 1
        opts = {}
        if i % 5 == 1:
            opts["trim_blocks"] = False
        if i % 7 == 2:
            opts["lstrip_blocks"] = False
        case(f"fuzz_ws_{i:03d}", "".join(parts), **opts)


whitespace_fuzz(150, 20260115)


def main():
    out = []
    for name, tpl, variables, options in CASES:
        r = render(tpl, variables, **options)
        entry = {"name": name, "template": tpl, "vars": variables}
        if options:
            entry["options"] = options
        out.append({**entry, **r})
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
