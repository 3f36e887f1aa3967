"""aurora-serve on loopback, the real engine on the demo-kit GGUF: the official `openai` client as the peer,
and hostile requests, each answered with the right status while the server keeps serving."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import socket
import stat
import subprocess
import sysconfig
import time
from pathlib import Path

import openai
import pytest

BIN = Path(sysconfig.get_path("scripts"))
GREEDY = {"temperature": 0, "max_tokens": 16}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    config = tmp_path_factory.mktemp("config")
    port = free_port()
    proc = subprocess.Popen([str(BIN / "aurora-serve"), str(exported["q8_0"]), "--port", str(port), "--queue", "4",
                             "--ctx", "1024"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "XDG_CONFIG_HOME": str(config)})
    banner = proc.stdout.readline()
    assert "API key: " in banner, proc.stderr.read() if proc.poll() is not None else banner
    key = banner.split("API key: ")[1].split()[0]
    url = f"http://127.0.0.1:{port}"
    ready(port)
    yield {"url": url, "key": key, "port": port, "config": config, "proc": proc}
    proc.terminate()
    proc.wait(timeout=30)


def raw(port: int, method: str, path: str, body=None, headers: dict | None = None, partial: bool = False):
    """(status, headers, body) of one request made by hand (the Host header too); `partial`: send only the
    first 64 KiB of a large body (the server answers from its Content-Length)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    headers = dict(headers or {})
    data = body if isinstance(body, bytes) or body is None else json.dumps(body, ensure_ascii=False).encode()
    conn.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
    for key, value in headers.items():
        conn.putheader(key, value)
    if data is not None:
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(data)))
    conn.endheaders()
    if data is not None:
        try:
            conn.send(data[: 64 << 10] if partial else data)
        except OSError:  # the server answered and closed first
            pass
    response = conn.getresponse()
    content = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, content


def ready(port: int) -> None:
    for _ in range(400):
        try:
            raw(port, "GET", "/v1/models")
            return
        except OSError:
            time.sleep(0.05)


def headers(server, **extra) -> dict:
    return {"Authorization": f"Bearer {server['key']}", **extra}


def client(server):
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key=server["key"], max_retries=0)


def test_the_official_client_streams_and_the_text_equals_aurora_chat(server, exported):
    messages = [{"role": "system", "content": "你是一个乐于助人的助手。"}, {"role": "user", "content": "你好"}]
    c = client(server)
    assert [m.id for m in c.models.list().data] == ["aurora"]
    chunks = list(c.chat.completions.create(model="aurora", messages=messages, stream=True, **GREEDY))
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert streamed and chunks[-1].choices[0].finish_reason in ("stop", "length")
    whole = c.chat.completions.create(model="aurora", messages=messages, **GREEDY)  # the KV cache reused
    assert whole.choices[0].message.content and whole.object == "chat.completion"
    assert whole.usage.completion_tokens <= 16 and whole.usage.prompt_tokens > 5
    cli = subprocess.run([str(BIN / "aurora-chat"), str(exported["q8_0"]), "--system", "你是一个乐于助人的助手。",
                          "--prompt", "你好", "--temperature", "0", "--max-tokens", "16", "--ctx", "1024"],
                         capture_output=True, text=True, timeout=120)
    from aurora_desktop.chat_cli import visible

    assert cli.stdout.rstrip("\n") == visible(streamed)  # the terminal shows control characters as \\xNN
    text = c.completions.create(model="aurora", prompt="混合专家模型", **GREEDY)
    assert text.choices[0].text and text.object == "text_completion"


def test_aurora_chat_through_a_server(server, exported):
    """`aurora-chat --remote` against aurora-serve: the same greedy answer as the local chat, and a clear line
    for a wrong key or an address where nothing listens."""
    from aurora_desktop.chat_cli import visible

    argv = ["--prompt", "你好", "--temperature", "0", "--max-tokens", "16", "--system", "你是一个乐于助人的助手。"]
    env = {**os.environ, "AURORA_API_KEY": server["key"]}
    remote = subprocess.run([str(BIN / "aurora-chat"), "--remote", server["url"] + "/v1", *argv],
                            capture_output=True, text=True, timeout=120, env=env)
    local = subprocess.run([str(BIN / "aurora-chat"), str(exported["q8_0"]), "--ctx", "1024", *argv],
                           capture_output=True, text=True, timeout=120)
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout and visible(remote.stdout)
    wrong = subprocess.run([str(BIN / "aurora-chat"), "--remote", server["url"] + "/v1", *argv], capture_output=True,
                           text=True, timeout=60, env={**os.environ, "AURORA_API_KEY": "aurora-wrong"})
    assert wrong.returncode == 2 and "the server said 401" in wrong.stderr and len(wrong.stderr.splitlines()) == 1
    nobody = subprocess.run([str(BIN / "aurora-chat"), "--remote", f"http://127.0.0.1:{free_port()}/v1", *argv],
                            capture_output=True, text=True, timeout=60)
    assert nobody.returncode == 2 and "cannot reach the server" in nobody.stderr


def test_the_key_is_kept_for_the_user_alone(server):
    key_file = server["config"] / "Aurora" / "serve-api-key"
    assert key_file.read_text().strip() == server["key"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


@pytest.mark.parametrize("case,status", [
    ("no key", 401), ("wrong key", 401), ("dns rebinding", 403), ("10 MB body", 413), ("not json", 400),
    ("wrong types", 400), ("max_tokens 1e9", 400), ("temperature -1", 400), ("assistant last", 400),
])
def test_hostile_requests(server, case, status):
    body = {"model": "aurora", "messages": [{"role": "user", "content": "你好"}], "max_tokens": 4}
    h = headers(server)
    content = None
    if case == "no key":
        h.pop("Authorization")
    elif case == "wrong key":
        h["Authorization"] = "Bearer aurora-wrong"
    elif case == "dns rebinding":
        h["Host"] = "evil.example"
    elif case == "10 MB body":
        content = b'{"messages": "' + b"x" * (10 << 20) + b'"}'
    elif case == "not json":
        content = b"{not json"
    elif case == "wrong types":
        body["messages"] = [{"role": "user", "content": 42}]
    elif case == "max_tokens 1e9":
        body["max_tokens"] = 10**9
    elif case == "temperature -1":
        body["temperature"] = -1
    elif case == "assistant last":
        body["messages"].append({"role": "assistant", "content": "x"})
    code, _h, answer = raw(server["port"], "POST", "/v1/chat/completions", content if content is not None else body,
                           h, partial=case == "10 MB body")
    assert code == status, answer
    assert json.loads(answer)["error"]["message"]
    assert raw(server["port"], "GET", "/v1/models", headers=headers(server))[0] == 200  # still serving


def test_cors_only_for_listed_origins(server):
    code, h, _ = raw(server["port"], "GET", "/v1/models", headers=headers(server, Origin="https://evil.example"))
    assert code == 200 and "access-control-allow-origin" not in h
    code, h, _ = raw(server["port"], "OPTIONS", "/v1/chat/completions",
                     headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert code == 403 and "access-control-allow-origin" not in h


def test_many_requests_at_once_are_answered_or_told_to_wait(server):
    def one(i):
        return raw(server["port"], "POST", "/v1/chat/completions",
                   {"messages": [{"role": "user", "content": f"第{i}个"}], "max_tokens": 16}, headers(server))[0]

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        codes = list(pool.map(one, range(64)))
    assert set(codes) <= {200, 429} and codes.count(200) >= 5 and codes.count(429) >= 1
    assert server["proc"].poll() is None


def test_a_client_that_goes_away_stops_its_answer(exported, tmp_path):
    port, log = free_port(), tmp_path / "serve.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([str(BIN / "aurora-serve"), str(exported["q8_0"]), "--port", str(port), "--no-key",
                                 "--ctx", "4096"], stdout=subprocess.PIPE, stderr=err, text=True,
                                env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)})
        try:
            proc.stdout.readline()
            ready(port)
            body = json.dumps({"messages": [{"role": "user", "content": "写一个很长的故事"}], "max_tokens": 4000,
                               "temperature": 0, "stream": True}).encode()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            stream = conn.getresponse()
            for _ in range(6):
                assert stream.fp.readline()
            conn.close()  # the client hangs up mid-answer
            again = raw(port, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "你好"}],
                                                               "max_tokens": 1})
            assert again[0] == 200
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    said = log.read_text()
    assert "the client went away; its answer stopped after" in said, said


def test_without_a_key_only_loopback(exported):
    result = subprocess.run([str(BIN / "aurora-serve"), str(exported["q8_0"]), "--no-key", "--host", "0.0.0.0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "without a key only 127.0.0.1" in result.stderr
