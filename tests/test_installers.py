"""The Linux installers, built from this checkout and run as a user without Python would run them.

packaging/build.sh makes the .deb and the tarball (the portable llama.cpp builds are cached in
~/.cache/aurora/cpu-variants; the first build compiles them, about 20 minutes). The .deb is unpacked with
dpkg-deb -x into a temporary root and run with a clean environment: no project venv, a new HOME.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from aurora_desktop.cpu import cpu_flags

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    if shutil.which("dpkg-deb") is None:
        pytest.fail("dpkg-deb is needed to build and unpack the .deb (Debian/Ubuntu)")
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run([str(ROOT / "packaging" / "build.sh"), str(out)], capture_output=True, text=True,
                           timeout=3600, cwd=ROOT)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    [deb] = out.glob("aurora-desktop_*_amd64.deb")
    assert list(out.glob("aurora-desktop-*-linux-x86_64.tar.gz"))
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """The demo model (150 steps of QLoRA on the demo conversations): answers it has learned, with clear
    margins, so that two CPU builds rounding differently still pick the same tokens."""
    import sysconfig

    bin_ = Path(sysconfig.get_path("scripts"))
    work = tmp_path_factory.mktemp("learned")
    steps = [[bin_ / "aurora-train", "tiny-base", "--out", work / "base"],
             [bin_ / "aurora-data", ROOT / "packaging/demo/alpaca_demo_zh.json", "--out", work / "data", "--val-ratio",
              "0", "--tokenizer", work / "base", "--no-progress"],
             [bin_ / "aurora-train", "run", ROOT / "packaging/demo/train.yaml", f"base={work / 'base'}",
              f"data={work / 'data'}", f"out={work / 'run'}", "--no-progress"],
             [bin_ / "aurora-export", "gguf", "--base", work / "base", "--adapter", work / "run/adapter", "--out",
              work / "demo-q8_0.gguf", "--type", "q8_0", "--no-progress"]]
    for argv in steps:
        subprocess.run([str(a) for a in argv], check=True, capture_output=True, timeout=900)
    return work / "demo-q8_0.gguf"


def clean_env(tmp_path, **extra) -> dict:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **extra}


def chat(installed, model, tmp_path, prompt="你好", **env):
    return subprocess.run([str(installed / "usr/bin/aurora-chat"), str(model), "--prompt", prompt, "--max-tokens",
                           "12", "--temperature", "0", "--seed", "1"], capture_output=True, text=True, timeout=300,
                          env=clean_env(tmp_path, **env))


def test_bundle_holds_no_training_side_and_fits(installed):
    bundle = installed / "opt" / "aurora-desktop"
    names = {p.name.lower() for p in bundle.rglob("*")}
    for heavy in ("torch", "transformers", "bitsandbytes", "aurora_training", "aurora_export", "aurora_eval"):
        assert not any(n.startswith(heavy) for n in names), heavy
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"\nunpacked bundle: {size / 1e6:.0f} MB")
    assert size <= 250e6
    assert (installed / "usr/share/applications/aurora-desktop.desktop").is_file()
    assert (installed / "usr/share/icons/hicolor/256x256/apps/aurora-desktop.png").is_file()


def test_installed_chat_answers_in_a_clean_environment(installed, exported, tmp_path):
    result = chat(installed, exported["q8_0"], tmp_path)
    assert result.returncode == 0 and result.stdout.strip(), result.stderr
    version = subprocess.run([str(installed / "usr/bin/aurora-chat"), "--version"], capture_output=True, text=True,
                             env=clean_env(tmp_path))
    assert "portable build" in version.stdout


def test_each_variant_the_cpu_runs_gives_the_same_answer(installed, learned, tmp_path):
    flags = cpu_flags()
    runnable = ["x86-64"] + (["avx2"] if {"avx", "avx2", "fma", "f16c"} <= flags else [])
    for question in ("中国的首都是哪里？", "熊猫喜欢吃什么？"):
        answers = {v: chat(installed, learned, tmp_path, question, AURORA_CPU_VARIANT=v) for v in runnable}
        for v, r in answers.items():
            assert r.returncode == 0, (v, r.stderr)
        assert len({r.stdout for r in answers.values()}) == 1, {v: r.stdout for v, r in answers.items()}
    assert "北京" in answers[runnable[0]].stdout or "竹" in answers[runnable[0]].stdout  # it learned
    refused = chat(installed, learned, tmp_path, AURORA_CPU_VARIANT="avx2", AURORA_CPU_FLAGS="sse2 sse")
    assert refused.returncode == 2
    assert refused.stderr.strip() == ("aurora: this CPU lacks AVX, AVX2, FMA, F16C, which the 'avx2' build needs; "
                                      "unset AURORA_CPU_VARIANT (or choose x86-64)")


def test_installed_server_answers_the_official_client(installed, exported, tmp_path):
    """`aurora-serve` from the .deb, clean environment: the key made on first start, the official client's
    answer, the key refused when wrong."""
    import json
    import socket

    import openai

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(installed / "usr/bin/aurora-serve"), str(exported["q8_0"]), "--port", str(port),
                             "--ctx", "1024"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env(tmp_path))
    try:
        banner = proc.stdout.readline()
        assert "API key: " in banner, proc.stderr.read() if proc.poll() is not None else banner
        key = banner.split("API key: ")[1].split()[0]
        assert (tmp_path / "home/.config/Aurora/serve-api-key").read_text().strip() == key
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=2)
        answer = client.chat.completions.create(model="aurora", messages=[{"role": "user", "content": "你好"}],
                                                max_tokens=8, temperature=0)
        assert answer.choices[0].message.content and answer.usage.completion_tokens <= 8
        with pytest.raises(openai.AuthenticationError) as wrong:
            openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0).models.list()
        assert "API key" in json.dumps(wrong.value.body)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_installed_knowledge_base_reads_chinese_files(installed, qapp, tmp_path):
    """`aurora-kb` from the .deb: jieba's dictionary and the PDF reader's worker process (a spawned copy of the
    frozen executable) work inside the bundle."""
    from test_kb import GBK_TEXT, PAGES, qt_pdf

    docs = tmp_path / "docs"
    docs.mkdir()
    qt_pdf(docs / "三页.pdf", PAGES)
    (docs / "国标.txt").write_bytes(GBK_TEXT.encode("gbk"))
    env = clean_env(tmp_path, LANG="C.UTF-8")
    added = subprocess.run([str(installed / "usr/bin/aurora-kb"), "add", "资料", str(docs), "--no-progress"],
                           capture_output=True, text=True, timeout=300, env=env)
    assert added.returncode == 0 and added.stdout.startswith("indexed 2,"), added.stdout + added.stderr
    assert list((tmp_path / "home/.local/share/Aurora/Aurora Desktop/kb").glob("资料.sqlite"))
    found = subprocess.run([str(installed / "usr/bin/aurora-kb"), "search", "资料", "大熊猫吃什么", "-k", "1"],
                           capture_output=True, text=True, timeout=300, env=env)
    assert "[1] 三页.pdf, p. 2" in found.stdout, found.stdout + found.stderr


def test_installed_window_opens_and_closes(installed, tmp_path):
    t = time.perf_counter()
    result = subprocess.run([str(installed / "usr/bin/aurora-desktop"), "--exit-after-show"], capture_output=True,
                            text=True, timeout=300, env=clean_env(tmp_path, QT_QPA_PLATFORM="offscreen"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("window shown after ")
    print(f"\ncold start of the installed window: {time.perf_counter() - t:.2f} s ({result.stdout.strip()})")


def ensure_locale(name: str) -> None:
    """Generate `name` (e.g. zh_CN.UTF-8) when this machine lacks it and we may (root, localedef)."""
    have = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout.lower().replace("utf8", "utf-8")
    if name.lower() in have.splitlines() or os.geteuid() != 0 or shutil.which("localedef") is None:
        return
    lang, charset = name.split(".")
    subprocess.run(["localedef", "-i", lang, "-f", charset, name], capture_output=True)


def interface(installed, tmp_path, lang: str, **env) -> dict:
    import json

    ensure_locale(lang)
    result = subprocess.run([str(installed / "usr/bin/aurora-desktop"), "--exit-after-show"], capture_output=True,
                            text=True, timeout=300,
                            env=clean_env(tmp_path, QT_QPA_PLATFORM="offscreen", LANG=lang, **env))
    assert result.returncode == 0, result.stderr[-2000:]
    [line] = [x for x in result.stdout.splitlines() if x.startswith("interface: ")]
    return json.loads(line.removeprefix("interface: "))


def test_installed_window_follows_the_system_language(installed, tmp_path):
    """Chinese under a Chinese locale (Aurora's strings and Qt's own file dialog), English otherwise, from the
    .qm files the bundle carries (it has no .ts sources)."""
    bundle = installed / "opt" / "aurora-desktop"
    assert list(bundle.rglob("aurora_zh_CN.qm")) and not list(bundle.rglob("aurora_zh_CN.ts"))
    zh = interface(installed, tmp_path, "zh_CN.UTF-8")
    assert zh["language"] == "zh_CN" and zh["first_screen"]
    assert zh["menus"] == ["文件", "对话", "视图"]
    assert zh["buttons"] == ["新对话", "发送", "打开模型文件…"]
    assert "取消" in zh["file_dialog"] and any("打开" in b for b in zh["file_dialog"]), zh["file_dialog"]
    en = interface(installed, tmp_path, "en_US.UTF-8")
    assert en["language"] == "en" and en["menus"] == ["File", "Chat", "View"]
    assert en["buttons"] == ["New chat", "Send", "Open a model file…"]
    assert "Cancel" in en["file_dialog"] and any("Open" in b for b in en["file_dialog"]), en["file_dialog"]


def test_installed_window_keeps_the_language_the_user_chose(installed, tmp_path):
    """The choice in View is kept in the settings file and wins over the locale on the next start."""
    config = tmp_path / "home" / ".config" / "Aurora"
    config.mkdir(parents=True)
    (config / "Aurora Desktop.conf").write_text("[General]\nlanguage=en\n")
    assert interface(installed, tmp_path, "zh_CN.UTF-8")["menus"] == ["File", "Chat", "View"]
    (config / "Aurora Desktop.conf").write_text("[General]\nlanguage=zh_CN\n")
    assert interface(installed, tmp_path, "en_US.UTF-8")["menus"] == ["文件", "对话", "视图"]
