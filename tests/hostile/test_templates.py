"""Hostile chat templates inside a GGUF: bounded, and the engine falls back to the built-in format with a note."""

from __future__ import annotations

import subprocess
import sys
import time

import gguf
import pytest

from aurora_core.chat_format import CHAT_TEMPLATE, ChatTemplate, ChatTemplateError
from aurora_desktop.conversation import Conversation
from aurora_desktop.engine import ChatEngine, EngineConfig
from gguf_forge import rewrite

STR = gguf.GGUFValueType.STRING
LOOP = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
HOSTILE = {
    "huge string": "{{ 'x' * 4000000000 }}" + LOOP,
    "nested ranges": "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}" + LOOP,
    "doubling with ~": "{% set s = namespace(v='x') %}{% for i in range(64) %}{% set s.v = s.v ~ s.v %}{% endfor %}" + LOOP,
    "recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}" + LOOP,
    "deep nesting": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}" + LOOP,
    "syntax error": "{% for m in messages %}{{ m['content'] }",
    "attribute escape": "{{ ''.__class__.__mro__[1].__subclasses__() }}" + LOOP,
    "50 MB template": "{# " + "x" * (50 << 20) + " #}" + LOOP,
    "power tower": "{% set n = namespace(v=2 ** 64) %}{% for i in range(5) %}{% set n.v = n.v ** 64 %}{% endfor %}"
                   "{{ n.v }}" + LOOP,
    "repeated squaring": "{% set n = namespace(v=3) %}{% for i in range(40) %}{% set n.v = n.v * n.v %}{% endfor %}"
                         + LOOP,
    "doubling by addition": "{% set n = namespace(v=1) %}{% for i in range(9000) %}{% set n.v = n.v + n.v %}"
                            "{% endfor %}" + LOOP,
    "%-format width": "{{ '%09999999999d' % 1 }}" + LOOP,
    "str.format width": "{{ '{:>9999999999}'.format(1) }}" + LOOP,
    "format filter width": "{{ '%9999999999s'|format('x') }}" + LOOP,
    "25 nested fors": "{% for a in [1] %}" * 25 + "x" + "{% endfor %}" * 25 + LOOP,  # Python: too many nested blocks
    "100 nested ifs": "{% if true %}" * 100 + "x" + "{% endif %}" * 100 + LOOP,
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_each_hostile_template_is_refused_quickly(name):
    t = time.perf_counter()
    with pytest.raises(ChatTemplateError):
        ChatTemplate(HOSTILE[name]).render([{"role": "user", "content": "你好"}])
    assert time.perf_counter() - t < 10


def test_the_bounds_leave_ordinary_arithmetic_and_formatting_alone():
    template = ChatTemplate("{{ 2 ** 64 }} {{ 10 * 10 - 1 }} {{ '%05d' % 42 }} {{ '{:>6}'.format('x') }} "
                            "{% for m in messages %}{% if loop.index0 % 2 == 0 %}{{ m['content'] }}{% endif %}"
                            "{% endfor %}")
    text = "".join(p for p in template.render([{"role": "user", "content": "你好"}]) if isinstance(p, str))
    assert text == "18446744073709551616 99 00042      x 你好"


def test_nesting_depth_counts_blocks_and_brackets():
    from aurora_core.chat_format import nesting_depth

    assert nesting_depth(CHAT_TEMPLATE) < 10
    assert nesting_depth("{% for a in b %}{% if c %}{{ f((1)) }}{% endif %}{% endfor %}") == 4
    assert nesting_depth("{% set x %}a{% endset %}{% set y = 1 %}{{ y }}") == 1


@pytest.mark.parametrize("name", ["syntax error", "nested ranges", "50 MB template", "25 nested fors", "power tower"])
def test_the_engine_loads_and_falls_back(exported, tmp_path, name):
    """Also a syntax error, which llama-cpp-python itself raises while loading a model."""
    model = rewrite(exported["f16"], tmp_path / "t.gguf", {"tokenizer.chat_template": (HOSTILE[name], STR)})
    engine = ChatEngine(model, EngineConfig(n_ctx=512))
    try:
        assert any("built-in" in w for w in engine.warnings)
        assert engine.template.source == CHAT_TEMPLATE
        conv = Conversation()
        conv.add_user("你好")
        assert engine.prompt_tokens(conv)[0] == engine.bos
        assert len(engine.prompt_tokens(conv)) < 50  # not "the message is 50,000,002 tokens"
    finally:
        engine.close()


EXPLODES_AT_TURN_3 = ("{% if messages|length > 4 %}{% for i in range(999) %}{% for j in range(999) %}{% for k in "
                      "range(999) %}{% endfor %}{% endfor %}{% endfor %}{% endif %}" + CHAT_TEMPLATE)


def test_a_template_that_explodes_later_falls_back_at_that_turn(exported, tmp_path):
    model = rewrite(exported["f16"], tmp_path / "late.gguf", {"tokenizer.chat_template": (EXPLODES_AT_TURN_3, STR)})
    engine = ChatEngine(model, EngineConfig(n_ctx=1024))
    try:
        assert engine.warnings == []  # cheap for the load-time probe
        conv = Conversation()
        for i in range(3):
            conv.add_user(f"问题{i}")
            conv.add_assistant(f"回答{i}")
        conv.add_user("第四个问题")
        t = time.perf_counter()
        ids = engine.prompt_tokens(conv)
        assert time.perf_counter() - t < 10 and ids[0] == engine.bos
        assert any("failed" in w and "built-in" in w for w in engine.warnings)
    finally:
        engine.close()


WATCHDOG = r"""
import time
from aurora_core.chat_format import ChatTemplate, ChatTemplateError
slow = "{% for a in messages %}{% for b in messages %}{% for c in messages %}{% for d in messages %}{{ '' }}" \
       "{% endfor %}{% endfor %}{% endfor %}{% endfor %}"
t = time.perf_counter()
try:
    ChatTemplate(slow).render([{"role": "user", "content": "x"}] * 300)
    print("rendered")
except ChatTemplateError as exc:
    print(f"{exc} after {time.perf_counter() - t:.1f} s")
"""


def test_a_slow_template_is_stopped_by_the_watchdog():
    """8.1e9 loop steps within every size limit: only the time limit can stop it (the test times out without)."""
    out = subprocess.run([sys.executable, "-c", WATCHDOG], capture_output=True, text=True, timeout=60)
    assert "took longer than 2 s" in out.stdout, out.stdout + out.stderr
