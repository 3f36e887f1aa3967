"""Hostile adapters, configs, data files, training runs and REPL input: one line, nothing lost, no wrong model."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from commands import BIN, one_line, run


# ---------------------------------------------------------------- adapters and checkpoints (export)


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            data.pop(k, None)
        else:
            data[k] = v
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("change,needle", [
    ({"r": 16}, "says r = 16 but the LoRA tensors"),  # merged 4x too weak before
    ({"r": 0}, "r = 0 must be at least 1"),
    ({"r": -3}, "r = -3 must be at least 1"),
    ({"r": "four"}, "'r' and 'lora_alpha' must be numbers"),
    ({"lora_alpha": None}, "key 'lora_alpha' is missing"),
])
def test_bad_adapter_configs(kit, adapter, tmp_path, change, needle):
    edit_json(adapter / "adapter_config.json", **change)
    out = tmp_path / "o.gguf"
    one_line(run("aurora-export", "gguf", "--base", kit, "--adapter", adapter, "--out", out, "--type", "f16"), needle)
    assert not out.exists() and not list(tmp_path.glob(".o.gguf*"))


def test_unreadable_configs(kit, adapter, tmp_path):
    (adapter / "adapter_config.json").write_bytes(b"\xff\xfe{ not utf-8")
    one_line(run("aurora-export", "gguf", "--base", kit, "--adapter", adapter, "--out", tmp_path / "o.gguf"),
             "adapter_config.json: not UTF-8")
    (adapter / "adapter_config.json").write_text("[1, 2, 3]")
    one_line(run("aurora-export", "gguf", "--base", kit, "--adapter", adapter, "--out", tmp_path / "o.gguf"),
             "is not a JSON object")


@pytest.mark.parametrize("change,needle", [
    ({"num_hidden_layers": "two"}, "num_layers must be a positive whole number, not 'two'"),
    ({"num_attention_heads": 0}, "num_heads must be a positive whole number, not 0"),
])
def test_bad_base_configs(kit, tmp_path, change, needle):
    edit_json(kit / "config.json", **change)
    one_line(run("aurora-export", "gguf", "--base", kit, "--out", tmp_path / "o.gguf"), needle)


def test_index_that_is_a_list(kit, tmp_path):
    (kit / "model.safetensors.index.json").write_text("[]")
    one_line(run("aurora-export", "gguf", "--base", kit, "--out", tmp_path / "o.gguf"), "not a safetensors index")


def test_weights_that_overflow_f16_are_refused_by_name(kit, adapter, tmp_path):
    from safetensors.torch import load_file, save_file

    weights = adapter / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    key = next(k for k in tensors if "layers.1.self_attn.v_proj.lora_B" in k)
    tensors[key] = tensors[key] * 1e7
    save_file(tensors, str(weights))
    out = tmp_path / "o.gguf"
    one_line(run("aurora-export", "gguf", "--base", kit, "--adapter", adapter, "--out", out, "--type", "f16"),
             "tensor blk.1.attn_v.weight", "beyond F16's 65504", "export bf16 or f32")
    assert not out.exists() and not list(tmp_path.glob(".o.gguf*"))
    assert run("aurora-export", "gguf", "--base", kit, "--adapter", adapter, "--out", out,
               "--type", "f32").returncode == 0  # f32 holds them


def test_output_that_is_a_folder_and_force_keeps_the_old_file_until_done(kit, tmp_path):
    (tmp_path / "dir.gguf").mkdir()
    one_line(run("aurora-export", "gguf", "--base", kit, "--out", tmp_path / "dir.gguf", "--force"), "is a folder")


def test_sigterm_during_export_cleans_up_like_ctrl_c(kit, tmp_path):
    old = tmp_path / "o.gguf"
    old.write_bytes(b"the previous export")
    proc = subprocess.Popen([str(BIN / "aurora-export"), "gguf", "--base", str(kit), "--out", str(old), "--type",
                             "f32,q8_0,q6_k,q4_k_m", "--force", "--no-progress"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".o*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted; no partial output was left" in err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert old.read_bytes() == b"the previous export"


# ---------------------------------------------------------------- training configs and runs


@pytest.mark.parametrize("values,needle", [
    ({"learning_rate": float("inf")}, "learning_rate must be a positive finite number"),
    ({"max_steps": -5}, "max_steps must be 0"),
    ({"lora_r": "eight"}, "wrong type"),
])
def test_train_config_is_checked_wherever_it_is_built(values, needle):
    from aurora_training.config import ConfigError, TrainConfig

    with pytest.raises(ConfigError, match=needle):
        TrainConfig(**values)


def _train_data(tmp_path: Path) -> Path:
    from aurora_training.data import DataConfig, prepare

    rows = [{"messages": [{"role": "user", "content": f"第{i}个问题是什么？"},
                          {"role": "assistant", "content": f"这是第{i}个回答。"}]} for i in range(6)]
    src = tmp_path / "chat.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    prepare([src], tmp_path / "data", DataConfig(val_ratio=0), progress=False)
    return tmp_path / "data"


def _cfg(tiny_base, data, out, **extra) -> list[str]:
    values = dict(base=str(tiny_base), data=str(data), out=str(out), max_steps=4, batch_size=2, grad_accum=1,
                  save_every=2, log_every=1, epochs=10, warmup_ratio=0.0, lr_scheduler="constant")
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


def test_divergent_training_stops_without_an_adapter(tiny_base, tmp_path):
    from aurora_training.config import ConfigError, load_config
    from aurora_training.train import run as train

    data = _train_data(tmp_path)
    cfg = load_config(None, _cfg(tiny_base, data, tmp_path / "run", learning_rate=1e30, optimizer="adamw"))
    with pytest.raises(ConfigError, match="training diverged"):
        train(cfg, progress=False)
    assert not (tmp_path / "run" / "adapter").exists()


@pytest.mark.slow  # runs in CI (./run test), not in ./run test --fast
def test_resume_edge_cases(tiny_base, tmp_path):
    (tmp_path / "cfg.yaml").write_text("")
    data = _train_data(tmp_path)
    out = tmp_path / "run"
    # --resume with nothing to resume: one line, not a silent fresh start
    one_line(run("aurora-train", "run", tmp_path / "cfg.yaml", *_cfg(tiny_base, data, out), "--resume"),
             "holds no checkpoint to resume from")
    # a kill before the first checkpoint leaves metrics lines; a fresh start must not keep them twice
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 9.9}\n{"step": 2, "lo')
    assert run("aurora-train", "run", tmp_path / "cfg.yaml", *_cfg(tiny_base, data, out)).returncode == 0
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) == [1, 2, 3, 4]
    # a truncated last metrics line does not block --resume; a 0-byte optimizer.pt is one line
    newest = sorted((out / "checkpoints").iterdir())[-1]
    shutil.rmtree(out / "adapter")
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "lo')
    (newest / "optimizer.pt").write_bytes(b"")
    one_line(run("aurora-train", "run", tmp_path / "cfg.yaml", *_cfg(tiny_base, data, out, max_steps=6), "--resume"),
             f"{newest}: the checkpoint is damaged", "delete this folder")


# ---------------------------------------------------------------- aurora-data


def test_data_after_the_json_array(tmp_path):
    src = tmp_path / "a.json"
    src.write_text('[{"instruction": "你好吗", "input": "", "output": "很好"}]\n{"instruction": "x", "output": "y"}\n')
    one_line(run("aurora-data", src, "--out", tmp_path / "out"), "a.json:2:1: more data after the end of the JSON array")
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_an_input_among_the_outputs_is_never_overwritten(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    src = out / "train.jsonl"
    src.write_text(json.dumps({"instruction": "你好吗？", "output": "很好。"}, ensure_ascii=False) + "\n")
    before = src.read_bytes()
    one_line(run("aurora-data", src, "--out", out, "--force"), "is one of the outputs")
    assert src.read_bytes() == before


def test_gbk_file(tmp_path):
    src = tmp_path / "gbk.jsonl"
    good = json.dumps({"instruction": "你好吗？", "output": "我很好，谢谢。"}, ensure_ascii=False)
    src.write_bytes(good.encode() + b"\n" + good.encode("gbk") + b"\n")
    one_line(run("aurora-data", src, "--out", tmp_path / "o"), "gbk.jsonl:2: not UTF-8 text", "iconv")
    skipped = run("aurora-data", src, "--out", tmp_path / "o", "--skip-invalid", "--val-ratio", "0")
    assert skipped.returncode == 0 and skipped.stdout.startswith("kept 1 of 1")


def test_empty_input_writes_nothing(tmp_path):
    src = tmp_path / "empty.jsonl"
    src.write_text("")
    one_line(run("aurora-data", src, "--out", tmp_path / "o"), "kept 0 of 0 conversations", "nothing was written")
    assert not (tmp_path / "o" / "train.jsonl").exists()


def test_out_and_report_that_are_files(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text(json.dumps({"instruction": "你好吗？", "output": "很好。"}, ensure_ascii=False) + "\n")
    (tmp_path / "file").write_text("x")
    one_line(run("aurora-data", src, "--out", tmp_path / "file"), "--out", "is a file")
    one_line(run("aurora-data", src, "--out", tmp_path / "o", "--report", tmp_path / "file"), "--report", "is a file")
    assert not (tmp_path / "o" / "train.jsonl").exists()  # checked before any work


# ---------------------------------------------------------------- the REPL keeps the conversation


@pytest.fixture
def repl(exported):
    import pexpect

    child = pexpect.spawn(str(BIN / "aurora-chat"), [str(exported["q8_0"]), "--max-tokens", "8", "--temperature", "0"],
                          encoding="utf-8", timeout=120)
    child.expect(">>> ")
    yield child
    child.close(force=True)


def test_repl_survives_bad_save_and_load(repl, tmp_path):
    repl.sendline("你好")
    repl.expect(">>> ")
    cases = {
        "list.json": "[1, 2]",
        "number-system.json": '{"system": 5, "messages": []}',
        "two-assistants.json": json.dumps({"messages": [{"role": "user", "content": "a"},
                                                        {"role": "assistant", "content": "b"},
                                                        {"role": "assistant", "content": "c"}]}),
        "deep.json": "[" * 100000 + "]" * 100000,
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        repl.sendline(f"/load {tmp_path / name}")
        repl.expect(">>> ")
        assert "cannot load" in repl.before and "unchanged" in repl.before, (name, repl.before)
    repl.sendline("/load /dev/zero")
    repl.expect(">>> ")
    assert "larger than 64 MiB" in repl.before
    repl.sendline("/save /proc/nope/c.json")
    repl.expect(">>> ")
    assert "cannot save" in repl.before
    repl.sendline(f"/save {tmp_path / 'kept.json'}")
    repl.expect(">>> ")
    kept = json.loads((tmp_path / "kept.json").read_text())
    assert [m["role"] for m in kept["messages"]] == ["user", "assistant"] and kept["messages"][0]["content"] == "你好"


def test_non_utf8_input_is_not_fatal(exported):
    piped = subprocess.run([str(BIN / "aurora-chat"), str(exported["q8_0"]), "--max-tokens", "4", "--json"],
                           input=b"\xff\xfe\xfa bad bytes \xe4\xbd", capture_output=True, timeout=120)
    assert piped.returncode == 0 and json.loads(piped.stdout)["completion_tokens"] >= 1


@pytest.mark.parametrize("flag,value,needle", [
    ("--max-tokens", "-1", "max_tokens -1 is out of range; choose int from 1"),
    ("--temperature", "-1", "temperature -1.0 is out of range"),
    ("--temperature", "nan", "temperature nan is out of range"),
    ("--top-p", "7", "top_p 7.0 is out of range; choose float from 0.0 to 1.0"),
])
def test_sampling_flags_out_of_range(exported, flag, value, needle):
    one_line(run("aurora-chat", exported["q8_0"], "--prompt", "你好", flag, value), needle)
