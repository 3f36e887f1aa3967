"""`aurora-train run`: QLoRA fine-tuning, resumable, reading the JSONL of aurora-data.

Reads top to bottom: check the inputs (before any model is loaded), build the examples with the
chat formatter, load the 4-bit base with LoRA, then loop over epochs and micro-batches with gradient
accumulation, logging metrics and saving a resumable checkpoint every `save_every` optimizer steps.
A checkpoint holds the LoRA weights, optimizer and scheduler state, every RNG state and the data
position, so `--resume` continues exactly where a crash or `kill -9` stopped the run.

The run folder at the end:
    adapter/            adapter_config.json, adapter_model.safetensors (PEFT), training_config.yaml,
                        chat_template.jinja, aurora_provenance.json (data manifest: hashes, counts)
    checkpoints/        step-000NNN/ (the newest `keep_checkpoints`)
    metrics.jsonl, loss.png
Works unchanged under `accelerate launch` (DDP): each process takes every world-th micro-batch.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from .atomic import new_folder
from .chat_format import CHAT_TEMPLATE, IGNORE_INDEX, Turn, encode_conversation
from .config import ConfigError, TrainConfig
from .data import file_sha256
from .qlora import load_model

CHECKPOINTS = "checkpoints"


# ---------------------------------------------------------------- inputs, checked before any model


def data_file(cfg: TrainConfig) -> Path:
    p = Path(cfg.data)
    f = p / "train.jsonl" if p.is_dir() else p
    if not f.is_file():
        raise ConfigError(f"data: {f} does not exist; run aurora-data first and pass its train.jsonl")
    return f


def check_base(cfg: TrainConfig) -> dict:
    cfg_file = Path(cfg.base) / "config.json"
    if not cfg_file.is_file():
        raise ConfigError(f"base: {cfg_file} does not exist; pass a Hugging Face Mixtral checkpoint folder")
    config = json.loads(cfg_file.read_text(encoding="utf-8"))
    if config.get("model_type") != "mixtral":
        raise ConfigError(f"base: {cfg_file} is model_type {config.get('model_type')!r}, not Mixtral; "
                          "aurora-train fine-tunes MixtralForCausalLM")
    if not (Path(cfg.base) / "tokenizer.model").is_file():
        raise ConfigError(f"base: {Path(cfg.base) / 'tokenizer.model'} is missing; the base needs its tokenizer")
    return config


def load_tokenizer(cfg: TrainConfig):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(Path(cfg.base) / "tokenizer.model"))


def template_overhead(sp) -> int:
    """Tokens the template adds around one user/assistant exchange with empty texts."""
    return 1 + len(sp.encode("[INST]  [/INST]")) + 1


def load_examples(cfg: TrainConfig, sp) -> tuple[list[tuple[list[int], list[int]]], dict]:
    """(ids, labels) of every conversation that fits cutoff_len (whole turns kept), and counts."""
    path = data_file(cfg)
    overhead = template_overhead(sp)
    if cfg.cutoff_len <= overhead + 1:
        raise ConfigError(f"cutoff_len {cfg.cutoff_len} is shorter than the chat template's overhead of "
                          f"{overhead} tokens plus one reply token; raise cutoff_len")
    examples, skipped, read = [], 0, 0
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                turns = [Turn(t["role"], t["content"]) for t in row["turns"]]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ConfigError(f"{path}:{lineno}: not an aurora-data conversation ({exc}); "
                                  "regenerate it with aurora-data") from None
            read += 1
            encoded = encode_conversation(sp.encode, turns, row.get("system"), sp.bos_id(), sp.eos_id(),
                                          max_tokens=cfg.cutoff_len)
            if encoded is None:
                skipped += 1
            else:
                examples.append(encoded)
    if read == 0:
        raise ConfigError(f"data: {path} holds no conversations; check the aurora-data report")
    if not examples:
        raise ConfigError(f"data: none of the {read} conversations in {path} fits cutoff_len {cfg.cutoff_len}")
    return examples, {"file": path.name, "sha256": file_sha256(path), "conversations": read,
                      "examples": len(examples), "too_long_skipped": skipped}


# ---------------------------------------------------------------- batches and schedule


def epoch_batches(n: int, cfg: TrainConfig, epoch: int, rank: int, world: int) -> list[list[int]]:
    """This process's micro-batches (example indices) of one epoch: a seeded shuffle, every world-th batch."""
    order = list(range(n))
    random.Random(cfg.seed * 1000 + epoch).shuffle(order)
    batches = [order[i:i + cfg.batch_size] for i in range(0, n, cfg.batch_size)]
    per_rank = len(batches) // world
    if per_rank == 0:
        raise ConfigError(f"data: {n} examples make fewer micro-batches than the {world} processes")
    return batches[rank::world][:per_rank]


def collate(examples, indices, pad_id: int):
    import torch

    rows = [examples[i] for i in indices]
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (x, y) in enumerate(rows):
        ids[r, :len(x)] = torch.tensor(x)
        labels[r, :len(y)] = torch.tensor(y)
        mask[r, :len(x)] = 1
    return ids, labels, mask


def lr_lambda(cfg: TrainConfig, total_steps: int):
    warmup = int(cfg.warmup_ratio * total_steps)

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if cfg.lr_scheduler == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def make_optimizer(cfg: TrainConfig, params):
    import torch

    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    import bitsandbytes as bnb

    kind = {"paged_adamw_8bit": bnb.optim.PagedAdamW8bit, "adamw_8bit": bnb.optim.AdamW8bit,
            "paged_adamw": bnb.optim.PagedAdamW}[cfg.optimizer]
    return kind(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)


# ---------------------------------------------------------------- checkpoints


def checkpoints(out: Path) -> list[Path]:
    folder = out / CHECKPOINTS
    return sorted(p for p in folder.glob("step-*") if (p / "state.json").is_file()) if folder.is_dir() else []


def save_checkpoint(out: Path, model, optimizer, scheduler, state: dict, keep: int) -> Path:
    """Everything needed to resume, written to a temporary folder and renamed (a kill leaves no half)."""
    import numpy as np
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    folder = out / CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{state['step']:06d}"
    with new_folder(final, force=True) as tmp:
        weights = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model).items()}
        save_file(weights, str(tmp / "adapter_model.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
                   tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
    for old in checkpoints(out)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(folder: Path, model, optimizer, scheduler) -> dict:
    import numpy as np
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=False))
    rng = torch.load(folder / "rng.pt", weights_only=False)
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    return json.loads((folder / "state.json").read_text())


# ---------------------------------------------------------------- the run


def run(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train; returns the final adapter folder."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    base_config = check_base(cfg)
    sp = load_tokenizer(cfg)
    examples, manifest = load_examples(cfg, sp)
    out = Path(cfg.out)
    if not resume and checkpoints(out):
        raise ConfigError(f"out: {out} already holds checkpoints; pass --resume to continue, or choose another out")

    accelerator = Accelerator(cpu=not torch.cuda.is_available(),
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    rank, world = accelerator.process_index, accelerator.num_processes
    torch.manual_seed(cfg.seed)
    model = load_model(cfg, accelerator.device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(cfg, trainable)
    per_epoch = math.ceil(len(epoch_batches(len(examples), cfg, 0, rank, world)) / cfg.grad_accum)
    total = cfg.max_steps or per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, total))
    model, optimizer = accelerator.prepare(model, optimizer)

    state = {"step": 0, "epoch": 0, "micro": 0, "tokens": 0}
    metrics_path = out / "metrics.jsonl"
    board = _tensorboard(out) if accelerator.is_main_process else None
    if resume and checkpoints(out):
        state = load_checkpoint(checkpoints(out)[-1], accelerator.unwrap_model(model), optimizer, scheduler)
        if accelerator.is_main_process and metrics_path.is_file():  # forget lines the crashed run wrote later
            kept = [x for x in metrics_path.read_text().splitlines() if json.loads(x)["step"] <= state["step"]]
            metrics_path.write_text("".join(x + "\n" for x in kept))
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "training_config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    bar = _bar(total, state["step"], progress and accelerator.is_main_process)
    pad_id = sp.eos_id()
    model.train()
    started, tokens_at_start = time.perf_counter(), state["tokens"]
    last_loss = float("nan")
    done = state["step"] >= total
    while not done and state["epoch"] < cfg.epochs:
        batches = epoch_batches(len(examples), cfg, state["epoch"], rank, world)
        while state["micro"] < len(batches):
            group = batches[state["micro"]: state["micro"] + cfg.grad_accum]
            loss_sum = 0.0
            for indices in group:
                ids, labels, mask = (t.to(accelerator.device) for t in collate(examples, indices, pad_id))
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss  # + router aux loss if on
                accelerator.backward(loss / len(group))
                loss_sum += loss.item()
                state["tokens"] += int(mask.sum()) * world
            if cfg.max_grad_norm > 0:
                accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["micro"] += len(group)
            state["step"] += 1
            last_loss = loss_sum / len(group)
            epoch_done = state["micro"] >= len(batches)
            if epoch_done:
                state["epoch"], state["micro"] = state["epoch"] + 1, 0
            elapsed = time.perf_counter() - started
            tok_s = (state["tokens"] - tokens_at_start) / elapsed if elapsed > 0 else 0.0
            lr = scheduler.get_last_lr()[0]
            if accelerator.is_main_process:
                bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tok_s:,.0f}")
                bar.update(1)
                if state["step"] % cfg.log_every == 0 or state["step"] == 1 or state["step"] >= total:
                    with open(metrics_path, "a", encoding="utf-8") as f:
                        f.write(json.dumps({"step": state["step"], "epoch": state["epoch"], "loss": last_loss,
                                            "lr": lr, "tokens_per_s": tok_s, "tokens": state["tokens"],
                                            "world_size": world}) + "\n")
                    if board is not None:
                        for key, value in (("train/loss", last_loss), ("train/lr", lr), ("train/tokens_per_s", tok_s)):
                            board.add_scalar(key, value, state["step"])
            if state["step"] % cfg.save_every == 0 and state["step"] < total:
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    save_checkpoint(out, accelerator.unwrap_model(model), optimizer, scheduler, dict(state),
                                    cfg.keep_checkpoints)
            if state["step"] >= total:
                done = True
            if done or epoch_done:  # the next epoch has its own shuffle
                break
    bar.close()
    if board is not None:
        board.close()
    accelerator.wait_for_everyone()
    adapter = out / "adapter"
    if accelerator.is_main_process:
        write_adapter(accelerator.unwrap_model(model), adapter, cfg, manifest, base_config, state, last_loss)
        plot_loss(metrics_path, out / "loss.png")
    accelerator.end_training()
    return adapter


def write_adapter(model, folder: Path, cfg: TrainConfig, manifest: dict, base_config: dict, state: dict,
                  loss: float) -> None:
    """The PEFT adapter plus everything export needs, written to a temporary folder and renamed."""
    with new_folder(folder, force=True) as tmp:
        _write_adapter_files(tmp, model, cfg, manifest, base_config, state, loss)


def _write_adapter_files(tmp: Path, model, cfg: TrainConfig, manifest: dict, base_config: dict, state: dict,
                         loss: float) -> None:
    model.save_pretrained(tmp)
    (tmp / "training_config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    (tmp / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    data_dir = Path(cfg.data) if Path(cfg.data).is_dir() else Path(cfg.data).parent
    upstream = data_dir / "manifest.json"
    provenance = {
        "base": str(cfg.base), "base_model_type": base_config.get("model_type"),
        "datasets": [i["file"] for i in json.loads(upstream.read_text())["inputs"]] if upstream.is_file()
        else [manifest["file"]],
        "data": manifest, "aurora_data_manifest": json.loads(upstream.read_text()) if upstream.is_file() else None,
        "steps": state["step"], "tokens": state["tokens"], "final_loss": loss, "config": asdict(cfg),
    }
    (tmp / "aurora_provenance.json").write_text(json.dumps(provenance, indent=2, ensure_ascii=False))


def plot_loss(metrics: Path, png: Path) -> None:
    if not metrics.is_file():
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows])
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title("aurora-train")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def _tensorboard(out: Path):
    """A TensorBoard writer into OUT/tensorboard when the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(out / "tensorboard"))


def _bar(total: int, initial: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc="aurora-train", file=sys.stderr,
                disable=not enabled)

