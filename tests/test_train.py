"""aurora-train on the tiny kit: 4-bit experts, learning, bitwise resume after SIGKILL, DDP, bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from pathlib import Path

import pytest
import torch

from aurora_training.config import ConfigError, TrainConfig, load_config

BIN = Path(sysconfig.get_path("scripts"))
EXCHANGES = [("你好", "你好！很高兴见到你。"), ("一年有几个季节？", "一年有四个季节：春、夏、秋、冬。"),
             ("水在多少度结冰？", "在标准大气压下，水在零摄氏度结冰。"), ("中国的首都是哪里？", "中国的首都是北京。"),
             ("请写一句关于春天的诗。", "春风吹绿柳，燕子归来早。"), ("长城有多长？", "长城全长两万多公里。"),
             ("熊猫喜欢吃什么？", "熊猫喜欢吃竹子。"), ("Translate 我爱北京 into English.", "I love Beijing. 我爱北京。")]


@pytest.fixture(scope="module")
def train_data(tmp_path_factory):
    """Fixture conversations through the real aurora-data, as a user would prepare them."""
    from aurora_training.data import DataConfig, prepare

    folder = tmp_path_factory.mktemp("data")
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in EXCHANGES]
    rows.append({"messages": [{"role": "system", "content": "你是历史老师。"},
                              {"role": "user", "content": "秦朝是哪一年建立的？"}, {"role": "assistant", "content": "公元前221年。"},
                              {"role": "user", "content": "谁建立的？"}, {"role": "assistant", "content": "秦始皇嬴政。"}]})
    src = folder / "chat.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    prepare([src], folder / "prepared", DataConfig(val_ratio=0.0), progress=False)
    return folder / "prepared"


def write_config(path: Path, **values) -> Path:
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in values.items()), encoding="utf-8")
    return path


def quick(tiny_base, train_data, out, **extra):
    values = dict(base=str(tiny_base), data=str(train_data), out=str(out), learning_rate=0.003, max_steps=60,
                  batch_size=2, grad_accum=1, warmup_ratio=0.0, lr_scheduler="constant", save_every=1000,
                  log_every=1, epochs=100)
    values.update(extra)
    return values


def test_experts_are_held_in_4bit(tiny_base):
    import bitsandbytes as bnb

    from aurora_training.qlora import load_model, quantized_share

    model = load_model(TrainConfig(base=str(tiny_base), data="x"), "cpu")
    assert quantized_share(model) >= 0.99
    moe = model.base_model.model.model.layers[0].block_sparse_moe
    assert isinstance(moe.experts[3].w2.base_layer, bnb.nn.Linear4bit)
    assert not isinstance(moe.gate, bnb.nn.Linear4bit)  # the router stays 16-bit
    # The measure can fail: the same model in full precision has no 4-bit projection at all.
    full = load_model(TrainConfig(base=str(tiny_base), data="x", load_in_4bit=False), "cpu")
    assert quantized_share(full) == 0.0


@pytest.mark.slow  # runs in CI (./run test), not in ./run test --fast
def test_qlora_60_steps_cut_the_loss(tiny_base, train_data, tmp_path):
    from aurora_training.train import run

    cfg = TrainConfig(**quick(tiny_base, train_data, tmp_path / "run"))
    adapter = run(cfg, progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 60
    assert rows[-1]["loss"] < 0.7 * rows[0]["loss"]
    assert {"adapter_config.json", "adapter_model.safetensors", "chat_template.jinja", "training_config.yaml",
            "aurora_provenance.json"} <= {p.name for p in adapter.iterdir()}
    from aurora_core.chat_format import CHAT_TEMPLATE

    assert (adapter / "chat_template.jinja").read_text() == CHAT_TEMPLATE
    provenance = json.loads((adapter / "aurora_provenance.json").read_text())
    assert provenance["datasets"] == ["chat.jsonl"] and len(provenance["data_sha256"]) == 64
    assert provenance["data_manifest"]["read"] == {"chat.jsonl": 9}
    assert provenance["quantized_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj", "w1", "w3", "w2"]
    assert (tmp_path / "run" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert set(config["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "w1", "w2", "w3"}


def test_trained_adapter_exports_and_carries_provenance(tiny_base, train_data, tmp_path):
    from aurora_export.cli import main as export
    from aurora_training.train import run

    adapter = run(TrainConfig(**quick(tiny_base, train_data, tmp_path / "run", max_steps=3)), progress=False)
    out = tmp_path / "a.gguf"
    assert export(["gguf", "--base", str(tiny_base), "--adapter", str(adapter), "--out", str(out), "--type", "f16",
                   "--no-progress"]) == 0
    import gguf

    reader = gguf.GGUFReader(str(out))
    field = lambda k: reader.fields[k].parts[reader.fields[k].data[0]]  # noqa: E731
    assert bytes(field("general.dataset.0.name")).decode() == "chat.jsonl"
    provenance = json.loads((adapter / "aurora_provenance.json").read_text())
    assert bytes(field("general.aurora.train_data_sha256")).decode() == provenance["data_sha256"]
    assert int(field("general.aurora.train_steps")[0]) == 3


def _adapter_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


@pytest.mark.slow  # runs in CI (./run test), not in ./run test --fast
def test_resume_after_sigkill_is_bitwise_identical(tiny_base, train_data, tmp_path):
    values = quick(tiny_base, train_data, "unused", max_steps=40, grad_accum=2, save_every=2, keep_checkpoints=2,
                   lr_scheduler="cosine", warmup_ratio=0.05)
    cfg = write_config(tmp_path / "cfg.yaml", **values)
    exe = str(BIN / "aurora-train")
    full = subprocess.run([exe, "run", str(cfg), f"out={tmp_path / 'full'}", "--no-progress"], capture_output=True,
                          text=True, timeout=600)
    assert full.returncode == 0, full.stderr[-2000:]

    part = tmp_path / "part"
    proc = subprocess.Popen([exe, "run", str(cfg), f"out={part}", "--no-progress"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((part / "checkpoints").glob("step-*"))) < 2 and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (part / "adapter").exists()  # it really died before the end
    resumed = subprocess.run([exe, "run", str(cfg), f"out={part}", "--resume", "--no-progress"],
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = _adapter_tensors(tmp_path / "full" / "adapter"), _adapter_tensors(part / "adapter")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # bitwise, on the CPU with a fixed seed
    steps = [json.loads(x)["step"] for x in (part / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 41))


@pytest.mark.slow  # runs in CI (./run test), not in ./run test --fast
def test_ddp_two_cpu_processes(tiny_base, train_data, tmp_path):
    """DDP over gloo with 2 CPU processes, full precision (bitsandbytes 4-bit is not run distributed on CPUs).

    torchrun starts the processes here; accelerate's own multi-CPU launcher needs MPI. On GPUs the same
    command runs under `accelerate launch --multi_gpu`.
    """
    cfg = write_config(tmp_path / "cfg.yaml", **quick(tiny_base, train_data, tmp_path / "ddp", max_steps=6,
                                                      load_in_4bit=False, optimizer="adamw"))
    result = torchrun(["run", cfg], timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # one writer, not two
    assert all(r["world_size"] == 2 for r in rows)
    assert (tmp_path / "ddp" / "adapter" / "adapter_model.safetensors").is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_processes(program, *args, start_new_session: bool = False, timeout: float = 900):
    """PROGRAM ARGS under torchrun in 2 processes over gloo on this machine's CPUs (a free rendezvous port)."""
    cmd = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
           str(free_port()), str(program), *map(str, args)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if start_new_session:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def torchrun(argv: list, start_new_session: bool = False, timeout: float = 900):
    """`aurora-train ARGV` in 2 processes over gloo on this machine's CPUs."""
    return two_processes(BIN / "aurora-train", *argv, "--no-progress", start_new_session=start_new_session,
                         timeout=timeout)


def loads(stderr: str) -> dict[int, tuple[float, float]]:
    """Each rank's (MiB it loaded itself, MiB it received from rank 0), from its log line."""
    return {int(r): (float(held), float(got)) for r, held, got in re.findall(
        r"rank (\d) held ([\d.]+) MiB of the base after loading and received ([\d.]+) MiB from rank 0", stderr)}


@pytest.fixture(scope="module")
def fsdp_run(tiny_base, train_data, tmp_path_factory):
    """An uninterrupted FSDP run on 2 CPU processes, 4-bit, 8 steps with a checkpoint at step 4: (config, run
    folder, its stderr)."""
    folder = tmp_path_factory.mktemp("fsdp")
    values = quick(tiny_base, train_data, "unused", max_steps=8, save_every=4, fsdp=True,
                   optimizer="paged_adamw_8bit",  # replaced under FSDP, with a notice
                   train_router=True, router_aux_loss_coef=0.02)  # the router trains too, with its balancing loss
    cfg = write_config(folder / "cfg.yaml", **values)
    full = torchrun(["run", cfg, f"out={folder / 'full'}"])
    assert full.returncode == 0, full.stderr[-3000:]
    return cfg, folder / "full", full.stderr


@pytest.mark.slow  # runs in CI (./run test), not in ./run test --fast
def test_fsdp_two_cpu_processes_4bit_learn_resume_and_export(fsdp_run, tiny_base, tmp_path):
    """FSDP2 over gloo with 2 CPU processes, the base in bitsandbytes 4-bit (each rank holds half of every packed
    weight): rank 0 alone loads the base and broadcasts it, the loss falls (LoRA and the router train), the adapter
    is the usual PEFT folder, a run killed with SIGKILL after a checkpoint resumes to the bitwise same adapter, and
    the adapter exports to a GGUF that chats."""
    cfg, full, stderr = fsdp_run
    assert "paged_adamw_8bit cannot be checkpointed under FSDP; using adamw" in stderr
    ranks = loads(stderr)
    assert ranks[0][0] > 0 and ranks[0][1] == 0  # rank 0 alone holds the whole base in host RAM ...
    assert ranks[1] == (0, ranks[0][0])  # ... the other rank none of it: it receives every weight
    rows = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 9)) and all(r["world_size"] == 2 for r in rows)
    assert rows[-1]["loss"] < rows[0]["loss"] - 1.0  # it learns
    single = subprocess.run([str(BIN / "aurora-train"), "run", str(cfg), f"out={tmp_path / 'single'}", "max_steps=1",
                             "fsdp=false", "--no-progress"], capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    a = _adapter_tensors(full / "adapter")
    one = _adapter_tensors(tmp_path / "single" / "adapter")
    assert a.keys() == one.keys() and all(a[k].shape == one[k].shape for k in a)  # the same adapter format
    from safetensors import safe_open

    gate = "model.layers.0.block_sparse_moe.gate.weight"
    [base] = [f.get_tensor(gate) for shard in tiny_base.glob("*.safetensors")
              for f in [safe_open(str(shard), "pt")] if gate in f.keys()]
    trained = a[f"base_model.model.{gate}"]
    assert trained.dtype == one[f"base_model.model.{gate}"].dtype == torch.float32  # as without FSDP
    assert not torch.equal(trained, base.float())  # the router trained
    shards = full / "checkpoints" / "step-000004" / "shards"
    assert {p.name for p in shards.iterdir()} == {"optimizer", "rng-rank0.pt", "rng-rank1.pt"}

    part = tmp_path / "part"
    proc = torchrun(["run", cfg, f"out={part}"], start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and not (part / "checkpoints" / "step-000004" / "state.json").exists() \
            and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
    proc.wait()
    assert not (part / "adapter").exists()  # it died before the end
    resumed = torchrun(["run", cfg, f"out={part}", "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    b = _adapter_tensors(part / "adapter")
    assert all(torch.equal(a[k], b[k]) for k in a)  # bitwise, on the CPU with a fixed seed
    one_proc = subprocess.run([str(BIN / "aurora-train"), "run", str(cfg), f"out={part}", "--resume",
                               "--no-progress"], capture_output=True, text=True, timeout=300)
    assert one_proc.returncode == 2 and "fsdp: true needs 2 or more processes" in one_proc.stderr

    gguf = tmp_path / "fsdp-q8_0.gguf"
    export = subprocess.run([str(BIN / "aurora-export"), "gguf", "--base", str(tiny_base), "--adapter",
                             str(full / "adapter"), "--out", str(gguf), "--type", "q8_0", "--no-progress"],
                            capture_output=True, text=True, timeout=600)
    assert export.returncode == 0, export.stderr[-2000:]
    chat = subprocess.run([str(BIN / "aurora-chat"), str(gguf), "--prompt", "你好", "--max-tokens", "4",
                           "--temperature", "0"], capture_output=True, text=True, timeout=300)
    assert chat.returncode == 0, chat.stderr


@pytest.mark.slow
def test_fsdp_with_cpu_offload_gives_the_same_adapter(fsdp_run, tmp_path):
    """FSDP2's CPU offload path (the shards and the optimizer step in host RAM): on CPUs it changes where nothing
    lives, so the adapter is bitwise the one without offload; a notice says offload changes nothing here."""
    cfg, full, _ = fsdp_run
    offload = torchrun(["run", cfg, f"out={tmp_path / 'offload'}", "fsdp_offload=true"])
    assert offload.returncode == 0, offload.stderr[-3000:]
    assert "no CUDA GPU, so they are there already" in offload.stderr
    a, c = _adapter_tensors(full / "adapter"), _adapter_tensors(tmp_path / "offload" / "adapter")
    assert a.keys() == c.keys() and all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.slow
def test_fsdp_across_two_machines_loads_once(fsdp_run, tmp_path):
    """Two torchrun agents as two machines of one process each (static rendezvous over TCP): the first process of
    the second machine loads nothing itself (rank 0 alone reads the base), and the adapter is bitwise the one of
    one machine with two processes."""
    cfg, full, _ = fsdp_run
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    nodes = [subprocess.Popen([str(BIN / "torchrun"), "--nnodes", "2", "--node_rank", str(n), "--nproc_per_node", "1",
                               "--master_addr", "127.0.0.1", "--master_port", str(port), str(BIN / "aurora-train"),
                               "run", str(cfg), f"out={tmp_path / 'two'}", "--no-progress"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in (0, 1)]
    outputs = [node.communicate(timeout=900) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    ranks = loads(outputs[0][1] + outputs[1][1])
    assert ranks[0][0] > 0 and ranks[1] == (0, ranks[0][0])  # the second machine's LOCAL_RANK 0 loaded nothing
    a, b = _adapter_tensors(full / "adapter"), _adapter_tensors(tmp_path / "two" / "adapter")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_fsdp_ranks_dequantize_with_rank_0s_constants(tiny_base, tmp_path):
    """A rank whose bitsandbytes computed other quantization constants (here: rank 1's absmax altered after
    loading, as a machine that rounds differently would) gets rank 0's with the weights, so every rank
    dequantizes the same base. A rank with other LoRA settings than rank 0's stops with one line."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import sys, torch, torch.distributed as dist\n"
        "from accelerate import Accelerator\n"
        "import bitsandbytes as bnb\n"
        "from aurora_training import fsdp\n"
        "from aurora_training.config import ConfigError, TrainConfig\n"
        "from aurora_training.qlora import load_model\n"
        f"cfg = TrainConfig(base={str(tiny_base)!r}, data='-', fsdp=True)\n"
        "acc = Accelerator(cpu=True)\n"
        "def load():\n"
        "    other = len(sys.argv) > 1 and dist.get_rank() == 1  # LoRA on q_proj alone\n"
        "    model = load_model(TrainConfig(**{**vars(cfg), 'target_modules': ['q_proj']}) if other else cfg, 'cpu')\n"
        "    if dist.get_rank() == 1:\n"
        "        for m in model.modules():\n"
        "            if isinstance(m, bnb.nn.Linear4bit):\n"
        "                m.quant_state.absmax.add_(1)\n"
        "    return model\n"
        "try:\n"
        "    model = fsdp.load_sharded(acc, load, cfg)\n"
        "except ConfigError as exc:\n"
        "    print(exc, file=sys.stderr, flush=True)\n"
        "    sys.exit(2)\n"
        "mine = torch.cat([m.quant_state.absmax.float().flatten() for m in model.modules()\n"
        "                  if isinstance(m, bnb.nn.Linear4bit)])\n"
        "both = [torch.zeros_like(mine) for _ in range(2)]\n"
        "dist.all_gather(both, mine)\n"
        "from pathlib import Path\n"
        f"Path({str(tmp_path)!r}, f'rank{{dist.get_rank()}}.txt').write_text(str(torch.equal(*both)))\n"
        "del model\n"
        "import gc; gc.collect()  # FSDP's modules hold the process group: gone before it is\n"
        "dist.barrier()\n"
        "dist.destroy_process_group()\n")
    result = two_processes(script, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)] == ["True", "True"]
    other = two_processes(script, "other-lora", timeout=300)
    assert other.returncode != 0
    assert "fsdp: rank 1 holds other weights than rank 0 (first difference: ['self_attn.k_proj.weight'" \
        in other.stderr, other.stderr[-2000:]  # rank 0's LoRA wraps k_proj (k_proj.base_layer.weight)


def test_a_run_folder_that_machines_do_not_share_is_one_line(tmp_path):
    """Two processes whose run folder is a different folder at the same path, as on two machines without a shared
    file system (here: each rank is given its own folder): every rank stops with one line naming the blind rank."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import os, sys\n"
        "from pathlib import Path\n"
        "from aurora_training.config import ConfigError\n"
        "from aurora_training.train import shared_folder\n"
        "rank = int(os.environ['RANK'])\n"
        f"folder = Path({str(tmp_path)!r}) / ('shared' if len(sys.argv) > 1 else f'machine{{rank}}')\n"
        "try:\n"
        "    shared_folder(folder)\n"
        "    said = 'shared'\n"
        "except ConfigError as exc:\n"
        "    said = str(exc)\n"
        f"(Path({str(tmp_path)!r}) / f'said{{rank}}.txt').write_text(said)\n"
        "import torch.distributed as dist\n"
        "if dist.is_initialized():  # shared: the group is still up (on the error it was closed)\n"
        "    dist.barrier()\n"
        "    dist.destroy_process_group()\n")
    for extra, expect in (([], "is not the same folder on every machine (rank 1 on"), (["same"], "shared")):
        result = two_processes(script, *extra, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        said = [(tmp_path / f"said{r}.txt").read_text() for r in (0, 1)]
        assert all(expect in line and "\n" not in line for line in said), said
    assert not list((tmp_path / "shared").glob(".aurora-shared-*"))  # the token is gone again


# ---------------------------------------------------------------- bad input, before any model is loaded


@pytest.fixture
def no_model_load(monkeypatch):
    import aurora_training.train as train

    def refuse(*a, **k):
        raise AssertionError("a model was loaded before the inputs were checked")

    monkeypatch.setattr(train, "load_model", refuse)


def run_expect(cfg_values, match):
    from aurora_training.train import run

    with pytest.raises(ConfigError, match=match):
        run(TrainConfig(**cfg_values), progress=False)


def test_missing_data_file(tiny_base, tmp_path, no_model_load):
    run_expect(quick(tiny_base, tmp_path / "nope.jsonl", tmp_path / "o"), r"nope\.jsonl does not exist; run aurora-data")


def test_empty_data_set(tiny_base, tmp_path, no_model_load):
    (tmp_path / "train.jsonl").write_text("\n")
    run_expect(quick(tiny_base, tmp_path, tmp_path / "o"), "holds no conversations")


def test_base_that_is_not_mixtral(tiny_base, train_data, tmp_path, no_model_load):
    base = shutil.copytree(tiny_base, tmp_path / "llama")
    cfg = json.loads((base / "config.json").read_text())
    cfg["model_type"] = "llama"
    (base / "config.json").write_text(json.dumps(cfg))
    run_expect(quick(base, train_data, tmp_path / "o"), "model_type 'llama' is not Mixtral")


def test_cutoff_shorter_than_the_template(tiny_base, train_data, tmp_path, no_model_load):
    run_expect(quick(tiny_base, train_data, tmp_path / "o", cutoff_len=4), "shorter than the chat template's overhead")


def test_config_typo_names_the_key(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", base="b", data="d", learnig_rate=0.1)
    with pytest.raises(ConfigError, match=r"unknown key 'learnig_rate' \(did you mean 'learning_rate'\?\)"):
        load_config(cfg)
    result = subprocess.run([str(BIN / "aurora-train"), "run", str(cfg)], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "learnig_rate" in result.stderr
    with pytest.raises(ConfigError, match="epochs: expected a whole number"):
        load_config(cfg.parent / write_config(tmp_path / "d.yaml", base="b", data="d", epochs="many").name)


def test_existing_run_needs_resume(tiny_base, train_data, tmp_path, no_model_load):
    (tmp_path / "o" / "checkpoints" / "step-000002").mkdir(parents=True)
    (tmp_path / "o" / "checkpoints" / "step-000002" / "state.json").write_text("{}")
    run_expect(quick(tiny_base, train_data, tmp_path / "o"), "already holds checkpoints; pass --resume")


def test_estimate_for_mixtral_8x7b():
    from aurora_training.estimate import estimate

    default = dict(estimate(TrainConfig()))
    paper = dict(estimate(TrainConfig(target_modules=["q_proj", "v_proj"])))
    assert 20 * 2**30 < default["total"] < 32 * 2**30  # this project's target for the default recipe
    assert paper["total"] < default["total"]
    result = subprocess.run([str(BIN / "aurora-train"), "estimate"], capture_output=True, text=True)
    assert result.returncode == 0 and "| 4-bit weights + constants (46.4 B params) |" in result.stdout


def test_estimate_per_gpu_ddp_fsdp_and_offload():
    """Two 24 GB cards: DDP cannot hold the default recipe (each GPU the whole 27 GiB), FSDP fits; offload moves
    the shards to host RAM; four GPUs hold less each than two."""
    from aurora_training.estimate import GiB, per_gpu

    cfg = TrainConfig()
    ddp, _ = per_gpu(cfg, 2, fsdp=False)
    two, host2 = per_gpu(cfg, 2, fsdp=True)
    four, _ = per_gpu(cfg, 4, fsdp=True)
    off, host = per_gpu(cfg, 2, fsdp=True, offload=True)
    assert ddp[-1][1] > 24 * GiB > two[-1][1] > four[-1][1] > off[-1][1] and host2 == 0
    assert host > 20 * GiB  # the 4-bit base's shards, every rank's, in host RAM
    constants = {dict(rows)["4-bit quantization constants (every GPU holds all of them)"] for rows in (two, four, off)}
    assert len(constants) == 1 and 0.68 < constants.pop() / GiB < 0.70  # not sharded: absmax lives on the module
    moe, _ = per_gpu(TrainConfig(fsdp_wrap="moe_block"), 2, fsdp=True)
    assert moe[-1][1] > two[-1][1]  # the attention weights are the root's then: whole through every step
    result = subprocess.run([str(BIN / "aurora-train"), "estimate", "--gpus", "2", "--fsdp", "--offload"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "2 GPUs, FSDP with offload, per GPU:" in result.stdout
    assert "DDP would need 27.04 GiB on each GPU" in result.stdout and "host RAM for the offloaded shards" in result.stdout
    bad = subprocess.run([str(BIN / "aurora-train"), "estimate", "--offload"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--offload goes with --fsdp" in bad.stderr


def test_the_shipped_accelerate_config_starts_two_processes():
    """accelerate's own config reader on packaging/accelerate/fsdp-qlora.yaml: 2 GPU processes, no plugin of
    its own (Aurora shards with fsdp: true)."""
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(Path(__file__).resolve().parents[1] / "packaging/accelerate/fsdp-qlora.yaml"))
    assert config.distributed_type == "MULTI_GPU" and config.num_processes == 2 and not config.fsdp_config


def test_fsdp_set_up_mistakes_are_one_line_before_any_model(tiny_base, train_data, tmp_path, no_model_load,
                                                             monkeypatch):
    from aurora_training import fsdp

    run_expect(quick(tiny_base, train_data, tmp_path / "o", fsdp=True), "fsdp: true needs 2 or more processes")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setitem(fsdp.MIN_VERSIONS, "bitsandbytes", "99.0")
    run_expect(quick(tiny_base, train_data, tmp_path / "o", fsdp=True), r"bitsandbytes .* cannot shard 4-bit")
    with pytest.raises(ConfigError, match="fsdp_offload needs fsdp: true"):
        TrainConfig(fsdp_offload=True)
    with pytest.raises(ConfigError, match="fsdp_wrap must be one of decoder_layer, moe_block"):
        TrainConfig(fsdp=True, fsdp_wrap="layer")


@pytest.mark.slow
def test_qlora_gpu_bench_ddp_and_fsdp_side_by_side_on_two_cpu_processes():
    path = Path(__file__).resolve().parents[1] / "bench" / "qlora_gpu.py"
    result = two_processes(path, "--distributed", "--device", "cpu", "--small", "--steps", "2", "--seq", "64",
                           timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line for line in result.stdout.splitlines() if line.startswith("| DDP")
            or line.startswith("| FSDP")}
    assert set(rows) == {"DDP", "FSDP decoder_layer", "FSDP moe_block"}
    held = {}
    for label, row in rows.items():
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[1]) > 0 and float(cells[3].replace(",", "")) > 0 and float(cells[4]) == 1.0
        held[label] = float(cells[6])
    # the weights a process held whole at once: DDP all of them; FSDP a unit and the root, which FSDP2 keeps whole
    # from the forward into the backward, so with moe_block (attention in the root) more than with decoder_layer
    assert held["DDP"] > held["FSDP moe_block"] > held["FSDP decoder_layer"] > 0


def test_qlora_gpu_bench_runs_on_the_cpu_with_a_reduced_shape(capsys):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "qlora_gpu.py"
    spec = importlib.util.spec_from_file_location("qlora_gpu", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--device", "cpu", "--small", "--seq", "32", "--steps", "2"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| (")]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[1]) > 0 and float(cells[2]) > 0 and float(cells[4]) == 1.0  # all projections 4-bit


def test_router_training_and_aux_loss_reach_the_gguf(tiny_base, train_data, tmp_path):
    import gguf
    import numpy as np
    from safetensors.torch import load_file

    from aurora_export.cli import main as export
    from aurora_training.train import run

    plain = run(TrainConfig(**quick(tiny_base, train_data, tmp_path / "plain", max_steps=2)), progress=False)
    routed = run(TrainConfig(**quick(tiny_base, train_data, tmp_path / "routed", max_steps=2, train_router=True,
                                     router_aux_loss_coef=0.5)), progress=False)
    first = lambda run_dir: json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])["loss"]  # noqa: E731
    assert first(tmp_path / "routed") > first(tmp_path / "plain")  # the load-balancing term is in the loss
    gate = load_file(str(routed / "adapter_model.safetensors"))["base_model.model.model.layers.1.block_sparse_moe.gate.weight"]
    base = {}
    for shard in tiny_base.glob("model-*.safetensors"):
        base.update(load_file(str(shard)))
    assert not torch.equal(base["model.layers.1.block_sparse_moe.gate.weight"].float(), gate.float())  # it trained
    out = tmp_path / "routed.gguf"
    assert export(["gguf", "--base", str(tiny_base), "--adapter", str(routed), "--out", str(out), "--type", "f32",
                   "--no-progress"]) == 0
    tensors = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(str(out)).tensors}
    assert np.array_equal(tensors["blk.1.ffn_gate_inp.weight"], gate.float().numpy())
    assert export(["lora", "--base", str(tiny_base), "--adapter", str(routed), "--out", str(tmp_path / "l.gguf"),
                   "--no-progress"]) == 2
    assert plain.is_dir()


def test_the_papers_config_is_complete_and_valid():
    from aurora_training.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "packaging" / "aurora-paper.yaml")
    assert (cfg.learning_rate, cfg.epochs, cfg.save_every, cfg.load_in_4bit) == (5e-5, 3, 1000, True)
    assert cfg.target_modules == ["q_proj", "v_proj"] and (cfg.lora_r, cfg.lora_alpha) == (8, 16.0)
