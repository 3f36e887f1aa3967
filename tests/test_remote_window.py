"""The window as a server for other programs, the window and `aurora-chat` on a model that runs elsewhere, and
where remote keys are kept. Loopback only: the window's own server (aurora-serve's, in a thread), and
llama-cpp-python's own `llama_cpp.server` as the third-party OpenAI-compatible server."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
import llama_cpp  # noqa: E402,F401  -- before Qt, as the app does

import openai  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402
from test_desktop import bare_window, dialogs, send, window  # noqa: E402,F401  -- the same window fixtures
from test_serve import BIN, GREEDY, free_port, raw, ready  # noqa: E402

from aurora_desktop import credentials  # noqa: E402
from aurora_desktop.conversation import Conversation  # noqa: E402
from aurora_desktop.engine import ChatEngine, EngineConfig, SamplingSettings, consume  # noqa: E402

pytest.importorskip("llama_cpp.server.app")


@pytest.fixture
def config_home(tmp_path, monkeypatch):
    """The user's config folder (the API keys' files) inside the test's folder; no system keyring."""
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield home
    keyring.set_keyring(previous)


@pytest.fixture(scope="module")
def llama_server(exported, tmp_path_factory):
    """llama-cpp-python's own OpenAI-compatible server on the demo GGUF (its chat template from the file)."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(exported["q8_0"]),
                                 "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", "2",
                                 "--model_alias", "tiny-aurora"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if raw(port, "GET", "/v1/models")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        assert proc.poll() is None, log.read_text()[-2000:]
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()  # it may still be writing an answer whose client went away: then it is killed
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


# ---------------------------------------------------------------- keys


def test_a_key_goes_to_a_0600_file_when_there_is_no_keyring(config_home):
    url = "http://gpu-box:8080/v1"
    where = credentials.save_key(url, "sk-secret-1")
    path = config_home / "Aurora" / "remote-keys.json"
    assert where == str(path) and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert credentials.load_key(url) == "sk-secret-1" and credentials.load_key("http://other/v1") is None
    credentials.forget_key(url)
    assert credentials.load_key(url) is None and "sk-secret-1" not in path.read_text()


def test_a_key_goes_to_the_system_keyring_when_there_is_one(config_home):
    import keyring
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):  # a real backend, through keyring's own API
        priority = 1

        def __init__(self):
            super().__init__()
            self.items = {}

        def set_password(self, service, username, password):
            self.items[(service, username)] = password

        def get_password(self, service, username):
            return self.items.get((service, username))

        def delete_password(self, service, username):
            self.items.pop((service, username))

    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    assert credentials.save_key("http://gpu-box:8080/v1", "sk-secret-2") == "keyring"
    assert ring.items == {(credentials.SERVICE, "http://gpu-box:8080/v1"): "sk-secret-2"}
    assert not (config_home / "Aurora" / "remote-keys.json").exists()
    assert credentials.load_key("http://gpu-box:8080/v1") == "sk-secret-2"


# ---------------------------------------------------------------- one engine, two users


def test_two_threads_share_an_engine_one_answer_at_a_time(exported):
    """The window and a program (aurora-serve) on one engine: the second answer waits for the first, and a stop
    for one answer never stops the other."""
    engine = ChatEngine(exported["q8_0"], EngineConfig(n_ctx=1024, n_threads=2))
    try:
        conv = Conversation()
        conv.add_user("写一个很长的故事")
        alone = consume(engine.stream(conv, SamplingSettings(temperature=0, max_tokens=24)))
        first_cancel, second_cancel = threading.Event(), threading.Event()
        results, inside, overlap = {}, threading.Event(), []

        def run(name, cancel):
            def pieces(piece):
                overlap.append(name)
                inside.set()

            results[name] = consume(engine.stream(conv, SamplingSettings(temperature=0, max_tokens=24),
                                                  cancel=cancel), pieces)

        a = threading.Thread(target=run, args=("a", first_cancel))
        a.start()
        inside.wait(60)
        b = threading.Thread(target=run, args=("b", second_cancel))
        b.start()
        second_cancel.set()  # the waiting answer is stopped; the running one goes on
        a.join(60)
        b.join(60)
        assert results["a"].text == alone.text and results["a"].stop_reason == alone.stop_reason
        assert results["b"].stop_reason == "cancelled" and results["b"].text == ""
        assert "b" not in overlap  # no piece of b while a ran
    finally:
        engine.close()


# ---------------------------------------------------------------- the window serves


def test_the_window_serves_other_programs_while_it_chats(qtbot, window, config_home):
    w = window
    serve = w._action_keys["serve"]
    assert serve.isEnabled() and not serve.isChecked() and w.serve.server is None  # off by default
    serve.trigger()
    assert serve.isChecked() and w.serve.label.isVisible()
    key = (config_home / "Aurora" / "serve-api-key").read_text().strip()
    url = w.serve.server.url
    assert url.startswith("http://127.0.0.1:") and url in w.serve.label.text()
    assert key not in w.serve.label.text()  # not on the screen (a shared screen would show it) ...
    assert w.serve.copy_key.isVisible()
    qtbot.mouseClick(w.serve.copy_key, Qt.MouseButton.LeftButton)  # ... but one click from the clipboard
    assert QGuiApplication.clipboard().text() == key and w.serve.copy_key.text() == "Copied"
    client = openai.OpenAI(base_url=url, api_key=key, max_retries=0)
    answers = []
    program = threading.Thread(target=lambda: answers.append(client.chat.completions.create(
        model="x", messages=[{"role": "user", "content": "你好"}], **GREEDY)))
    program.start()
    w.new_chat()
    send(qtbot, w, "你好")  # the window's own answer, on the same engine meanwhile
    qtbot.waitUntil(lambda: not program.is_alive(), timeout=60000)
    assert answers and answers[0].choices[0].message.content
    assert w.store.branch(w.conv_id)[-1].content
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url, api_key="aurora-wrong", max_retries=0).models.list()
    port = w.serve.server.config.port
    serve.trigger()  # off: the port is closed
    assert not serve.isChecked() and w.serve.server is None and not w.serve.label.isVisible()
    assert not w.serve.copy_key.isVisible()
    with pytest.raises(OSError):
        raw(port, "GET", "/v1/models")


def test_a_taken_port_is_one_message_and_the_switch_stays_off(qtbot, window, dialogs, config_home):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        window.settings.setValue("serve_port", taken.getsockname()[1])
        window._action_keys["serve"].trigger()
        assert not window._action_keys["serve"].isChecked() and window.serve.server is None
        assert dialogs and "the port is in use" in dialogs[-1][1]


# ---------------------------------------------------------------- the window on a remote server


def test_aurora_chat_through_llama_cpp_server(llama_server):
    """Before the window's test: llama_cpp.server goes on writing an answer whose client went away (the window's
    Stop), and a request after it waits for that."""
    result = subprocess.run([str(BIN / "aurora-chat"), "--remote", llama_server, "--prompt", "你好", "--temperature",
                             "0", "--max-tokens", "12"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_the_window_chats_through_llama_cpp_server(qtbot, bare_window, llama_server, config_home):
    """The window connected to llama-cpp-python's own server: it says the model is remote, streams the answer into
    the same store, stops on request; the key stays out of the chats database and the settings file."""
    w = bare_window
    w.connect_remote(llama_server, None, "sk-not-checked-by-this-server")
    qtbot.waitUntil(lambda: w.engine is not None, timeout=60000)
    assert w.engine.remote and w.engine.model == "tiny-aurora"
    assert "Remote" in w.model_label.text() and "sent there" in w.model_label.text()
    assert llama_server in w.model_label.text()
    assert not w._action_keys["serve"].isEnabled()  # a remote model is not served on
    w.new_chat()
    w.store.set_settings(w.conv_id, {"temperature": 0.0, "max_tokens": 12})
    send(qtbot, w, "你好")
    rows = w.store.branch(w.conv_id)
    assert [r.role for r in rows] == ["user", "assistant"] and rows[-1].content and rows[-1].status == "done"
    assert not w.store.state_file(w.conv_id).exists()  # the KV cache is the server's
    w.store.set_settings(w.conv_id, {"temperature": 0.0, "max_tokens": 4000})
    pieces = []
    w.session.answer_text.connect(lambda _id, text: pieces.append(text))
    send(qtbot, w, "写一个很长的故事", wait=False)
    qtbot.waitUntil(lambda: bool(pieces), timeout=60000)
    w.stop()
    qtbot.waitUntil(lambda: w.streaming is None, timeout=60000)
    assert w.store.branch(w.conv_id)[-1].status == "stopped"
    w.settings.sync()
    assert "sk-not-checked" not in Path(w.settings.fileName()).read_text(encoding="utf-8")
    with sqlite3.connect(w.store.path) as db:
        assert not db.execute("select count(*) from messages where content like '%sk-not-checked%'").fetchone()[0]
    assert credentials.load_key(llama_server) == "sk-not-checked-by-this-server"
    w.close_model()
    assert w.engine is None and w.pages.currentWidget() is w.welcome


def test_the_window_on_a_server_that_is_not_there(qtbot, bare_window, dialogs, config_home):
    w = bare_window
    w.connect_remote(f"http://127.0.0.1:{free_port()}/v1", None, None)
    qtbot.waitUntil(lambda: bool(dialogs), timeout=30000)
    assert w.engine is None and "cannot reach the server" in dialogs[-1][1]
    assert w.model_button.isEnabled()


# ---------------------------------------------------------------- Stop against a silent server


@pytest.mark.parametrize("sends", [b"", b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
                                        b'data: {"choices": [{"delta": {"content": "\xe4\xbd\xa0"}}]}\n\n'])
def test_stop_hangs_up_on_a_silent_server_at_once(sends):
    """A server that says nothing (still reading a long prompt), or nothing more after one piece: Stop returns
    within a second with what came, instead of waiting for the next event that would let it check."""
    import socket as socket_

    from aurora_desktop.remote import RemoteEngine

    server = socket_.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []

    def serve():
        conn, _ = server.accept()
        accepted.append(conn)
        conn.recv(65536)
        conn.sendall(sends)  # and then silence

    threading.Thread(target=serve, daemon=True).start()
    engine = RemoteEngine(f"http://127.0.0.1:{server.getsockname()[1]}/v1", model="silent")
    conv = Conversation()
    conv.add_user("你好")
    cancel, result = threading.Event(), {}
    worker = threading.Thread(target=lambda: result.update(gen=consume(engine.stream(conv, cancel=cancel))),
                              daemon=True)
    worker.start()
    time.sleep(0.5)
    assert worker.is_alive()  # still waiting on the server
    stopped = time.monotonic()
    cancel.set()
    worker.join(5)
    assert not worker.is_alive() and time.monotonic() - stopped < 1.0
    assert result["gen"].stop_reason == "cancelled" and result["gen"].text == ("你" if sends else "")
    for c in accepted:
        c.close()
    server.close()
