"""aurora-chat through a pseudo-terminal (pexpect), through pipes, and with a network guard."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pexpect
import pytest

AURORA_CHAT = str(Path(sysconfig.get_path("scripts")) / "aurora-chat")


@pytest.fixture(scope="module")
def model(exported):
    return str(exported["f16"])


def spawn(model, *extra, home):
    child = pexpect.spawn(AURORA_CHAT, [model, "--ctx", "2048", "--temperature", "0", "--seed", "1", *extra],
                          encoding="utf-8", timeout=120, env={"HOME": str(home), "LANG": "C.UTF-8",
                                                              "PATH": "/usr/bin:/bin"})
    child.expect_exact(">>> ")
    return child


def test_repl_commands(model, tmp_path):
    child = spawn(model, "--max-tokens", "8", home=tmp_path)
    child.sendline("/help")
    child.expect_exact("/regen")
    child.expect_exact(">>> ")
    child.sendline("你好，请介绍一下你自己")
    child.expect_exact(">>> ")
    saved = tmp_path / "chat.json"
    child.sendline(f"/save {saved}")
    child.expect_exact(f"saved to {saved}")
    first = json.loads(saved.read_text(encoding="utf-8"))
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert first["messages"][0]["content"] == "你好，请介绍一下你自己"
    child.sendline("/set temperature=0.5")
    child.expect_exact("temperature = 0.5")
    child.sendline("/set bogus=1")
    child.expect_exact("cannot set: unknown setting 'bogus'")
    child.sendline("/regen")
    child.expect_exact(">>> ")
    child.sendline("/system 你是一个诗人。")
    child.expect_exact("system prompt set; the conversation starts over")
    child.sendline(f"/save {saved}")
    child.expect_exact("saved to")
    assert json.loads(saved.read_text(encoding="utf-8")) == {"system": "你是一个诗人。", "messages": []}
    child.sendline("/reset")
    child.expect_exact("conversation cleared")
    saved.write_text(json.dumps(first, ensure_ascii=False), encoding="utf-8")
    child.sendline(f"/load {saved}")
    child.expect_exact("loaded 2 messages")
    child.sendline("/nope")
    child.expect_exact("unknown command /nope")
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_ctrl_c_stops_the_answer_not_the_program(model, tmp_path):
    child = spawn(model, "--max-tokens", "4000", "--ctx", "4096", home=tmp_path)
    child.sendline("写一篇很长的文章")
    child.expect(r"\S{20}")  # the answer is streaming
    child.sendintr()
    child.expect_exact("[stopped]", timeout=30)
    child.expect_exact(">>> ")
    child.sendline("/save " + str(tmp_path / "after.json"))
    child.expect_exact("saved to")
    messages = json.loads((tmp_path / "after.json").read_text(encoding="utf-8"))["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] and messages[1]["content"]
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_piped_stdin_json(model):
    result = subprocess.run([AURORA_CHAT, model, "--json", "--max-tokens", "12", "--seed", "1"], input="你好\n",
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["stop_reason"] in ("length", "eos") and out["completion_tokens"] <= 12
    assert out["prompt_tokens"] > 3 and isinstance(out["answer"], str)


def test_prompt_flag_prints_one_answer(model):
    result = subprocess.run([AURORA_CHAT, model, "--prompt", "你好", "--max-tokens", "6", "--temperature", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.endswith("\n") and ">>>" not in result.stdout


def test_bad_model_file_is_one_line(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"not a model")
    result = subprocess.run([AURORA_CHAT, str(bad), "--prompt", "hi"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"aurora-chat: error: {bad}: not a GGUF file (starts with b'not '); export one with aurora-export gguf"]


# Connections, name lookups and sends; a bind to loopback port 0 is urllib3's import-time IPv6 probe
# (pulled in by gguf-py when mistral-common is installed), which sends nothing.
GUARD = """
import sys
events = []
WATCHED = ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto", "socket.sendmsg",
           "urllib.Request", "http.client.connect")
def hook(event, args):
    if event.startswith(WATCHED):
        events.append(event)
    elif event == "socket.bind" and str(args[1][0]) not in ("::1", "127.0.0.1", "localhost"):
        events.append(event)
sys.addaudithook(hook)
from aurora_desktop.chat_cli import main
rc = main(sys.argv[1:])
print("NETWORK-EVENTS:" + ",".join(events))
sys.exit(rc)
"""


def test_makes_no_network_connection(model):
    result = subprocess.run([sys.executable, "-c", GUARD, model, "--prompt", "你好", "--max-tokens", "8"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "NETWORK-EVENTS:"
