"""Hostile input, round two: the surfaces built after the first round (store, eval, importance matrices, LoRA
GGUF, training config, data) never hang, trace back or say yes to a wrong result.

Each case ends in one line naming the file and what to do (exit 2), or in a correct result.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sqlite3
import subprocess

import gguf
import pytest

from commands import BIN, one_line, run
from gguf_forge import rewrite

DEEP = "[" * 100_000 + "]" * 100_000  # overflows Python's stack in json, yaml and anything recursive
F32 = gguf.GGUFValueType.FLOAT32


# ---------------------------------------------------------------- JSON and YAML nested without end


def test_a_deep_adapter_config(kit, adapter, tmp_path):
    (adapter / "adapter_config.json").write_text('{"r": ' + DEEP + "}")
    for argv in (["lora", "--adapter", adapter, "--base", kit, "--out", tmp_path / "l.gguf"],
                 ["gguf", "--base", kit, "--adapter", adapter, "--out", tmp_path / "m.gguf", "--type", "f16"]):
        one_line(run("aurora-export", *argv), "adapter_config.json", "nested more than 64 levels")
    assert not list(tmp_path.glob("*.gguf"))


@pytest.mark.parametrize("layout", ["array", "jsonl"])
def test_a_deep_dataset_record(tmp_path, layout):
    record = '{"instruction": "你好", "input": "", "output": ' + DEEP + "}"
    src = tmp_path / ("d.json" if layout == "array" else "d.jsonl")
    src.write_text("[" + record + "]" if layout == "array" else record + "\n")
    one_line(run("aurora-data", src, "--out", tmp_path / "out"), f"{src}:1", "nested more than 64 levels")
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_a_deep_training_config(tmp_path):
    cfg = tmp_path / "deep.yaml"
    cfg.write_text("lora_r: " + DEEP)
    one_line(run("aurora-train", "estimate", cfg, quiet=False), "deep.yaml", "nested more than 64 levels")


# ---------------------------------------------------------------- training config values


@pytest.mark.parametrize("override,message", [
    ("weight_decay=.nan", "weight_decay: expected a finite number, got nan"),
    ("weight_decay=inf", "weight_decay: expected a finite number, got inf"),  # was blamed on the learning rate
    ("seed=1e23", "seed: 1e+23 is out of range (at most 2,147,483,647)"),
    ("max_steps=2.5", "max_steps: expected a whole number, got 2.5"),
    ("target_modules=q_proj,qproj", "target_modules: 'qproj' is no linear module of Mixtral (did you mean 'q_proj'?)"),
])
def test_training_config_values(override, message):
    from aurora_training.config import ConfigError, load_config

    with pytest.raises(ConfigError) as caught:
        load_config(None, ["base=b", "data=d", override])
    assert str(caught.value) == message


def test_options_after_the_config_keep_the_overrides(tmp_path):
    """`run CONFIG --no-progress key=value`: key=value stays an override (it was "unrecognized arguments")."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("base: b\n")
    result = subprocess.run([str(BIN / "aurora-train"), "run", str(cfg), "--no-progress", "lora_rr=4"],
                            capture_output=True, text=True, timeout=120)
    one_line(result, "unknown key 'lora_rr' (did you mean 'lora_r'?)")


# ---------------------------------------------------------------- aurora-data inputs


def test_a_lone_surrogate_in_a_record_is_dropped_from_the_text(tmp_path):
    src = tmp_path / "s.jsonl"
    src.write_text('{"instruction": "请解释\\ud800这个词", "input": "", "output": "好的\\udfff，这是解释。"}\n')
    result = run("aurora-data", src, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    row = json.loads((tmp_path / "out" / "train.jsonl").read_bytes().decode("utf-8"))
    assert [t["content"] for t in row["turns"]] == ["请解释这个词", "好的，这是解释。"]


def test_a_huge_line_is_not_read_whole(tmp_path):
    src = tmp_path / "one-line.jsonl"
    good = json.dumps({"instruction": "你好", "input": "", "output": "你好！很高兴见到你。"}, ensure_ascii=False)
    with open(src, "w") as f:
        f.write(good + "\n" + "x" * (65 << 20) + "\n" + good.replace("你好！", "您好！") + "\n")
    one_line(run("aurora-data", src, "--out", tmp_path / "out"), f"{src}:2", "longer than 64 MiB")
    result = run("aurora-data", src, "--out", tmp_path / "out", "--skip-invalid")
    assert result.returncode == 0 and "kept 2 of 2" in result.stdout, result.stderr


def test_inputs_that_are_not_files(tmp_path):
    (tmp_path / "folder").mkdir()
    one_line(run("aurora-data", tmp_path / "folder", "--out", tmp_path / "o"), "folder: is a folder")
    os.mkfifo(tmp_path / "pipe")
    one_line(run("aurora-data", tmp_path / "pipe", "--out", tmp_path / "o"), "pipe: not a regular file")


def test_utf16_gets_the_right_advice(tmp_path):
    src = tmp_path / "u16.jsonl"
    src.write_text('{"instruction": "你好", "output": "好"}\n', encoding="utf-16")
    one_line(run("aurora-data", src, "--out", tmp_path / "o"), "u16.jsonl", "iconv -f UTF-16 -t UTF-8")


# ---------------------------------------------------------------- non-finite adapters, hparams, imatrices


@pytest.mark.slow  # runs in CI (./run test), not in ./run test --fast
def test_a_non_finite_adapter_is_refused_by_every_command(kit, adapter, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    weights = adapter / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    name = sorted(tensors)[3]
    tensors[name][0, 0] = float("nan")
    save_file(tensors, str(weights))
    for argv in (["lora", "--adapter", adapter, "--base", kit, "--out", tmp_path / "l.gguf"],
                 ["gguf", "--base", kit, "--adapter", adapter, "--out", tmp_path / "m.gguf", "--type", "f16"]):
        one_line(run("aurora-export", *argv), "adapter_model.safetensors", name, "NaN or inf")
    tensors[name][0, 0] = 0.0
    save_file(tensors, str(weights))
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["lora_alpha"] = math.nan
    (adapter / "adapter_config.json").write_text(json.dumps(config))  # json writes NaN, and reads it back
    one_line(run("aurora-export", "lora", "--adapter", adapter, "--base", kit, "--out", tmp_path / "l.gguf"),
             "lora_alpha = nan must be a positive finite number")
    assert not list(tmp_path.glob("*.gguf")) and torch.isfinite(tensors[name]).all()


@pytest.mark.parametrize("key", ["llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon"])
def test_a_non_finite_float_hparam_is_refused_before_llama_cpp(exported, tmp_path, key):
    bad = rewrite(exported["f16"], tmp_path / "nan.gguf", {key: (math.nan, F32)})
    one_line(subprocess.run([str(BIN / "aurora-chat"), str(bad), "--prompt", "你好"], capture_output=True,
                            text=True, timeout=60), "nan.gguf", f"{key} = nan is not a finite number")


def test_terminal_escapes_in_the_vocabulary_are_shown_not_run(exported, tmp_path):
    """Every ordinary piece starts with ESC[2J (clear screen); aurora-chat prints it as text."""
    reader = gguf.GGUFReader(str(exported["f16"]))
    field = reader.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
    types = [int(reader.fields["tokenizer.ggml.token_type"].parts[i][0])
             for i in reader.fields["tokenizer.ggml.token_type"].data]
    hostile = [("\x1b[2J" + t) if kind == 1 else t for t, kind in zip(tokens, types)]
    bad = rewrite(exported["f16"], tmp_path / "esc.gguf", tokens=hostile)
    result = subprocess.run([str(BIN / "aurora-chat"), str(bad), "--prompt", "你好", "--max-tokens", "24",
                             "--temperature", "0"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\\x1b[2J" in result.stdout


@pytest.fixture(scope="module")
def imatrix_file(export_kit, tmp_path_factory):
    from aurora_export.imatrix import build, shipped_text

    out = tmp_path_factory.mktemp("im") / "imatrix.gguf"
    return build(export_kit, None, [shipped_text("en")], out, chunk_size=64, max_chunks=2, progress=False)


@pytest.mark.slow  # runs in CI (./run test), not in ./run test --fast
def test_bad_importance_matrices(kit, imatrix_file, tmp_path):
    from aurora_export.imatrix import read, write

    def gguf_with(imatrix) -> subprocess.CompletedProcess:
        return run("aurora-export", "gguf", "--base", kit, "--out", tmp_path / "q.gguf", "--type", "q4_k_m",
                   "--imatrix", imatrix)

    one_line(gguf_with(tmp_path / "missing.gguf"), "missing.gguf: no such file")
    one_line(gguf_with(tmp_path), f"{tmp_path}: is a folder")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(imatrix_file.read_bytes()[: imatrix_file.stat().st_size // 2])
    one_line(gguf_with(cut), "cut.gguf", "truncated")
    matrix = read(imatrix_file)
    name = sorted(matrix.sums)[0]
    matrix.sums[name][0, 0] = -1.0
    one_line(gguf_with(write(matrix, tmp_path / "negative.gguf")), "negative.gguf", name, "negative, NaN or inf")
    matrix.sums[name][0, 0] = 1.0
    matrix.sums[name] = matrix.sums[name][:, :-2]  # made for another shape
    one_line(gguf_with(write(matrix, tmp_path / "narrow.gguf")), "narrow.gguf", name, "in this model")
    assert not (tmp_path / "q.gguf").exists()


@pytest.mark.parametrize("content,message", [
    (b"", "holds no text"),
    (b"  \n\n", "holds no text"),
    (b"\0" * 4096, "holds NUL bytes"),
    (bytes(range(256)) * 16, "holds NUL bytes"),
    ("人工智能是计算机科学的一个分支。".encode("gbk") * 20, "not UTF-8 text"),
    (b"GGUF\x03\x00\x00\x00" + b"\x01" * 64, "is a GGUF file, not calibration text"),
])
def test_calibration_text_that_is_not_text(kit, tmp_path, content, message):
    text = tmp_path / "calibration.txt"
    text.write_bytes(content)
    one_line(run("aurora-export", "imatrix", "--base", kit, "--text", text, "--out", tmp_path / "i.gguf"),
             "calibration.txt", message)
    assert not (tmp_path / "i.gguf").exists()


def test_inspect_describes_a_truncated_file_then_refuses_it(exported, tmp_path):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(exported["f16"].read_bytes()[:-1000])
    named = rewrite(exported["f16"], tmp_path / "named.gguf", {"general.name": ("名" * (5 << 20), gguf.GGUFValueType.STRING)})
    result = run("aurora-export", "inspect", cut, quiet=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "cut.gguf: truncated" in lines[0], result.stderr
    assert "tensors by group" in result.stdout  # described first, then refused
    big = run("aurora-export", "inspect", named, quiet=False)
    assert big.returncode == 0 and len(big.stdout) < 20_000 and "general.name = 名名" in big.stdout


# ---------------------------------------------------------------- evaluation: resume only what is still true


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    from aurora_eval.demo_sets import write_demo_sets

    return write_demo_sets(tmp_path_factory.mktemp("bench"))


def _edit_answer(folder, subject_file) -> str:
    """Change the first question's answer in a CMMLU csv; returns the new answer."""
    path = folder / "test" / subject_file
    rows = list(csv.reader(path.open(encoding="utf-8")))
    old = rows[1][6]
    rows[1][6] = "B" if old != "B" else "C"
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return rows[1][6]


def test_eval_resumes_only_with_the_same_model_key_and_whole_rows(sets, exported, tmp_path):
    from aurora_eval.backends import GGUFBackend
    from aurora_eval.run import EvalSettings, evaluate

    data = {"cmmlu": shutil.copytree(sets["cmmlu"], tmp_path / "cmmlu")}
    out, settings = tmp_path / "out", EvalSettings(model="m", fingerprint="1")
    backend = GGUFBackend(exported["f32"], 2048)
    try:
        first = evaluate(backend, data, out, settings, progress=False)
        pred = out / "predictions.jsonl"
        rows = [json.loads(x) for x in pred.read_text().splitlines()]
        rows[1]["pred"] = "Z"  # a damaged row
        pred.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        subject = sorted(p.name for p in (data["cmmlu"] / "test").glob("*.csv"))[0]
        _edit_answer(data["cmmlu"], subject)
        evaluated = backend.evaluated
        second = evaluate(backend, data, out, settings, progress=False)
        assert backend.evaluated > evaluated  # the damaged row's and the edited question's predictions were made again
        lines = pred.read_text().splitlines()
        assert len(lines) == len(rows) + 2
        again = {json.loads(x)["id"] for x in lines[len(rows):]}
        assert rows[1]["id"] in again
        with pytest.raises(Exception, match="model file changed since; pass --force"):
            evaluate(backend, data, out, EvalSettings(model="m", fingerprint="2"), progress=False)
    finally:
        backend.close()
    key = subject[:-4]
    assert first["benchmarks"]["cmmlu"]["subjects"][key]["n"] == second["benchmarks"]["cmmlu"]["subjects"][key]["n"]


@pytest.mark.slow  # runs in CI (./run test), not in ./run test --fast
def test_eval_refuses_a_replaced_model_and_damaged_run_files(sets, exported, tmp_path):
    model = tmp_path / "model.gguf"
    shutil.copy(exported["f32"], model)
    out = tmp_path / "out"
    argv = [model, "--cmmlu", sets["cmmlu"], "--out", out, "--limit", "1", "--no-progress"]
    assert run("aurora-eval", *argv).returncode == 0
    shutil.copy(exported["q8_0"], model)  # another model under the same name
    one_line(run("aurora-eval", *argv), f"{out}: holds a run made with the model file changed since", "--force")
    (out / "run.json").write_text('{"model": ')
    one_line(run("aurora-eval", *argv), "run.json", "invalid JSON", "--force")
    (out / "run.json").write_text("[1, 2]")
    one_line(run("aurora-eval", *argv), "run.json: damaged", "--force")
    assert run("aurora-eval", *argv, "--force").returncode == 0
    (tmp_path / "file").write_text("x")
    one_line(run("aurora-eval", model, "--cmmlu", sets["cmmlu"], "--out", tmp_path / "file"), "file: is a file")


def test_eval_data_that_is_the_wrong_kind(sets, exported, tmp_path):
    ceval = shutil.copytree(sets["ceval"], tmp_path / "ceval")
    argv = [exported["f32"], "--ceval", ceval, "--out", tmp_path / "o", "--no-progress"]
    (ceval / "subject_mapping.json").write_text(DEEP)
    one_line(run("aurora-eval", *argv), "subject_mapping.json", "nested more than 64 levels")
    (ceval / "subject_mapping.json").write_text('["computer_network"]')
    one_line(run("aurora-eval", *argv), "subject_mapping.json: expected an object")
    shutil.copy(sets["ceval"] / "subject_mapping.json", ceval / "subject_mapping.json")
    val = sorted((ceval / "val").glob("*.csv"))[0]
    val.unlink()
    val.mkdir()
    one_line(run("aurora-eval", *argv), f"{val}: is a folder")


def test_a_run_with_fewer_dev_questions_than_shots_says_so(sets, exported, tmp_path):
    from aurora_eval.backends import GGUFBackend
    from aurora_eval.run import EvalSettings, evaluate

    backend = GGUFBackend(exported["f32"], 4096)
    try:
        results = evaluate(backend, {"cmmlu": sets["cmmlu"]}, tmp_path, EvalSettings(model="m", shots=100),
                           limit=1, progress=False)
    finally:
        backend.close()
    assert "5-shot (100 asked; the dev split holds 5)" in results["benchmarks"]["cmmlu"]["protocol"]


# ---------------------------------------------------------------- the chat store


def test_a_database_of_another_program_is_left_untouched(tmp_path):
    from aurora_desktop.store import Store, StoreError

    for version in (0, -5, 1):
        path = tmp_path / f"other{version}.sqlite3"
        db = sqlite3.connect(path)
        db.executescript(f"CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine'); "
                         f"PRAGMA user_version = {version};")
        db.close()
        before = path.read_bytes()
        with pytest.raises(StoreError, match="another program.*left untouched"):
            Store(path)
        assert path.read_bytes() == before and not path.with_name(path.name + "-wal").exists()


def test_lone_surrogates_and_nul_in_text_and_queries(tmp_path):
    from aurora_desktop.store import Store

    store = Store(tmp_path / "chats.sqlite3")
    export = tmp_path / "s.json"
    export.write_text('{"title": "t\\ud800", "messages": [{"role": "user", "content": "问\\udfff题"}, '
                      '{"role": "assistant", "content": "答案"}]}')
    (conv,) = store.import_file(export)
    assert [m.content for m in store.branch(conv)] == ["问\ufffd题", "答案"]
    assert store.conversation(conv).title == "t\ufffd"
    for query in ("\x00", "答\x00", "\ud800", "问\ud800题", "\x00\x00\x00"):
        store.search(query)  # no sqlite3 error
    assert [h.conversation_id for h in store.search("答\x00案")] == [conv]
    store.close()


def test_import_is_all_or_nothing(tmp_path, monkeypatch):
    from aurora_desktop.store import Store, StoreError

    store = Store(tmp_path / "chats.sqlite3")
    chats = [{"title": f"c{i}", "messages": [{"role": "user", "content": f"问题{i}"},
                                             {"role": "assistant", "content": f"回答{i}"}]} for i in range(3)]
    calls = []
    real_add = Store.add

    def failing_add(self, *args, **kwargs):  # the disk fills up at the second chat's answer
        calls.append(args)
        if len(calls) == 4:
            raise StoreError(f"{self.path}: the disk is full; free some space (nothing already saved was lost)")
        return real_add(self, *args, **kwargs)

    monkeypatch.setattr(Store, "add", failing_add)
    export = tmp_path / "three.json"
    export.write_text(json.dumps(chats, ensure_ascii=False))
    with pytest.raises(StoreError, match="disk is full"):
        store.import_file(export)
    assert store.conversations() == [] and store.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    monkeypatch.setattr(Store, "add", real_add)
    assert len(store.import_file(export)) == 3
    store.close()


def test_bad_imports_are_one_line_naming_the_file(tmp_path):
    from aurora_desktop.store import Store, StoreError

    store = Store(tmp_path / "chats.sqlite3")
    cases = {"deep.json": (DEEP, "nested more than 64 levels"),
             "gbk.json": ('{"messages": [{"role": "user", "content": "你好"}]}'.encode("gbk"), "not UTF-8 text"),
             "broken.json": ('{"messages": [', "invalid JSON")}
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        with pytest.raises(StoreError) as caught:
            store.import_file(path)
        assert str(caught.value).startswith(str(path)) and message in str(caught.value)
        assert "\n" not in str(caught.value)
    assert store.conversations() == []
    store.close()


def test_short_queries_fold_accented_letters(tmp_path):
    from aurora_desktop.store import Store

    store = Store(tmp_path / "chats.sqlite3")
    conv = store.create("德语")
    store.add(conv, None, "user", "Übersetze bitte: Straße")
    assert [h.conversation_id for h in store.search("üb")] == [conv]
    assert [h.conversation_id for h in store.search("ÜB")] == [conv]
    store.close()


# ---------------------------------------------------------------- the REPL


def test_repl_commands_that_were_unclear(exported, tmp_path):
    """/load without a file, a seed beyond llama.cpp's uint32, and a template that fails at turn 3: each is said,
    and the session goes on."""
    import pexpect

    from aurora_core.chat_format import CHAT_TEMPLATE

    late = rewrite(exported["q8_0"], tmp_path / "late.gguf", {"tokenizer.chat_template": (
        "{% if messages|length > 4 %}{{ raise_exception('no third turn') }}{% endif %}" + CHAT_TEMPLATE,
        gguf.GGUFValueType.STRING)})
    child = pexpect.spawn(str(BIN / "aurora-chat"), [str(late), "--max-tokens", "4", "--temperature", "0"],
                          encoding="utf-8", timeout=120)
    try:
        child.expect(">>> ")
        child.sendline("/load")
        child.expect("usage: /load FILE")
        child.sendline("/set seed=100000000000000000000")
        child.expect(r"cannot set: seed 100000000000000000000 is out of range; choose a whole number from 0 to "
                     r"4,294,967,295")
        for turn in range(3):
            child.expect(">>> ")
            child.sendline(f"第{turn + 1}个问题")
        child.expect("note: the model's chat template failed")
        child.expect(">>> ")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
