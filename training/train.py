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
Works unchanged under `accelerate launch` (DDP): each process takes every world-th micro-batch. With `fsdp: true`
the base is sharded over the processes instead (`fsdp.py`): same data order, same adapter folder.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aurora_core import mixtral
from aurora_core.chat_format import CHAT_TEMPLATE, IGNORE_INDEX, encode_conversation, template_overhead
from aurora_core.errors import AuroraError
from aurora_core.files import file_sha256, new_folder, writable_folder
from aurora_core.provenance import Provenance
from aurora_core.quiet import quiet_bitsandbytes
from aurora_core.records import read_records

from . import fsdp
from .config import ConfigError, TrainConfig
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
    try:
        config, _ = mixtral.read_config(Path(cfg.base))
    except AuroraError as exc:
        raise ConfigError(f"base: {exc}") from None
    if not (Path(cfg.base) / "tokenizer.model").is_file():
        raise ConfigError(f"base: {Path(cfg.base) / 'tokenizer.model'} is missing; the base needs its tokenizer")
    return config


def load_tokenizer(cfg: TrainConfig):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(Path(cfg.base) / "tokenizer.model"))


def load_examples(cfg: TrainConfig, sp) -> tuple[list[tuple[list[int], list[int]]], dict]:
    """(ids, labels) of every conversation that fits cutoff_len (whole turns kept), and counts."""
    path = data_file(cfg)
    overhead = template_overhead(sp.encode)
    if cfg.cutoff_len <= overhead + 1:
        raise ConfigError(f"cutoff_len {cfg.cutoff_len} is shorter than the chat template's overhead of "
                          f"{overhead} tokens plus one reply token; raise cutoff_len")
    examples, skipped, read = [], 0, 0
    for _, record in read_records(path):
        read += 1
        encoded = encode_conversation(sp.encode, record.turns, record.system, sp.bos_id(), sp.eos_id(),
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


def make_optimizer(cfg: TrainConfig, params, name: str | None = None):
    import torch

    name = name or cfg.optimizer
    if name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    quiet_bitsandbytes()
    import bitsandbytes as bnb

    kind = {"paged_adamw_8bit": bnb.optim.PagedAdamW8bit, "adamw_8bit": bnb.optim.AdamW8bit,
            "paged_adamw": bnb.optim.PagedAdamW}[name]
    return kind(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)


# ---------------------------------------------------------------- state and checkpoints


@dataclass
class TrainState:
    """Where a run is: saved in every checkpoint, so `--resume` continues exactly there."""

    step: int = 0
    """Optimizer steps done."""
    epoch: int = 0
    """Epochs finished."""
    micro: int = 0
    """Micro-batches of the current epoch done."""
    tokens: int = 0
    """Tokens trained on, over every process."""
    loss: float = float("nan")
    """Loss of the last optimizer step."""

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "TrainState":
        return cls(**{k: data[k] for k in ("step", "epoch", "micro", "tokens") if k in data},
                   loss=float(data.get("loss", float("nan"))))


def checkpoints(out: Path) -> list[Path]:
    folder = out / CHECKPOINTS
    return sorted(p for p in folder.glob("step-*") if (p / "state.json").is_file()) if folder.is_dir() else []


def shared_folder(out: Path) -> None:
    """With several processes, every one must see the same run folder: each rank writes its part of a checkpoint
    there and reads it back on --resume. Rank 0 leaves a token in it and every rank looks for it; where a machine
    sees another folder at that path, every rank stops with one line. Starts the process group (accelerate's,
    which the Accelerator reuses)."""
    import socket
    import uuid

    import torch
    import torch.distributed as dist
    from accelerate import PartialState

    PartialState(cpu=not torch.cuda.is_available())
    writable_folder(out, "out", ConfigError)
    token = [uuid.uuid4().hex if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(token, src=0)
    probe = out / f".aurora-shared-{token[0]}"
    if dist.get_rank() == 0:
        probe.write_text(token[0])
    dist.barrier()
    blind = [None] * dist.get_world_size()
    dist.all_gather_object(blind, None if probe.is_file() else socket.gethostname())
    dist.barrier()
    if dist.get_rank() == 0:
        probe.unlink()
    for rank, host in enumerate(blind):
        if host is not None:
            dist.destroy_process_group()  # before the error ends the process (else gloo's threads can outlive it)
            raise ConfigError(f"out: {out} is not the same folder on every machine (rank {rank} on {host} does not "
                              "see rank 0's files); put the run folder on a file system every machine mounts at the "
                              "same path (NFS or a cluster file system)")


def save_checkpoint(out: Path, weights: dict, optimizer, scheduler, state: TrainState, keep: int,
                    shards: Path | None = None) -> Path:
    """Everything needed to resume, written to a temporary folder and renamed (a kill leaves no half). `weights`:
    the LoRA weights; `shards` (FSDP): the folder of each rank's optimizer and RNG state, moved in (then
    `optimizer` is None: its state is in the shards)."""
    import torch
    from safetensors.torch import save_file

    folder = out / CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{state.step:06d}"
    with new_folder(final, force=True) as tmp:
        save_file(weights, str(tmp / "adapter_model.safetensors"))
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save(rng_states(), tmp / "rng.pt")
        if shards is not None:
            shards.rename(tmp / "shards")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        (tmp / "state.json").write_text(json.dumps(state.to_json(), indent=2))
    for old in checkpoints(out)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def lora_weights(model) -> dict:
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model).items()}


def load_checkpoint(folder: Path, model, optimizer, scheduler, rank: int | None = None) -> TrainState:
    """Restore a checkpoint; `rank` (FSDP): the LoRA weights are already in (loaded before sharding), the
    optimizer's state comes from the shards and this rank's RNG states from its own file."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    if rank is None:
        set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=False))
        rng = folder / "rng.pt"
    else:
        rng = folder / "shards" / f"rng-rank{rank}.pt"
        if not rng.is_file():
            raise ConfigError(f"{folder / 'shards'}: saved by fewer processes; resume with as many processes as "
                              "the run had")
        fsdp.load_optimizer(folder / "shards", model, optimizer)
    set_rng_states(torch.load(rng, weights_only=False))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=False))
    return TrainState.from_json(json.loads((folder / "state.json").read_text()))


def rng_states() -> dict:
    """Python's, numpy's and torch's random states (a checkpoint's, or under FSDP each rank's)."""
    import numpy as np
    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_states(rng: dict) -> None:
    import numpy as np
    import torch

    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])


# ---------------------------------------------------------------- the run, step by step


@dataclass
class Trainer:
    """What one run holds: inputs, the model with its optimizer, where it writes."""

    cfg: TrainConfig
    examples: list
    manifest: dict
    base_config: dict
    pad_id: int
    accelerator: object = None
    model: object = None
    optimizer: object = None
    scheduler: object = None
    trainable: list = field(default_factory=list)
    total_steps: int = 0

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    @property
    def main_process(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def peft_model(self):
        """The PEFT model: out of DDP's wrapper; FSDP2 shards it in place."""
        return self.model if self.cfg.fsdp else self.accelerator.unwrap_model(self.model)


def prepare_inputs(cfg: TrainConfig, resume: bool) -> Trainer:
    """Step 1: check the base, the data and the out folder, and encode the examples; no model yet."""
    if cfg.fsdp:
        fsdp.check_setup(cfg)
    base_config = check_base(cfg)
    sp = load_tokenizer(cfg)
    examples, manifest = load_examples(cfg, sp)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out {out}: is a file; choose a folder for the run")
    if fsdp.world_size() > 1:
        shared_folder(out)
    if not resume and checkpoints(out):
        raise ConfigError(f"out: {cfg.out} already holds checkpoints; pass --resume to continue, or choose another out")
    if resume and not checkpoints(out):
        raise ConfigError(f"out: {cfg.out} holds no checkpoint to resume from; run without --resume")
    writable_folder(out, "out", ConfigError)
    return Trainer(cfg, examples, manifest, base_config, pad_id=sp.eos_id())


def build_model(t: Trainer, resume: bool = False) -> None:
    """Step 2: the 4-bit base with LoRA, the optimizer and the schedule, prepared for this process: one whole copy
    (DDP, or a single process), or a shard (FSDP)."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    t.accelerator = Accelerator(cpu=not torch.cuda.is_available(),
                                kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    rank, world = t.accelerator.process_index, t.accelerator.num_processes
    per_epoch = math.ceil(len(epoch_batches(len(t.examples), t.cfg, 0, rank, world)) / t.cfg.grad_accum)
    t.total_steps = t.cfg.max_steps or per_epoch * t.cfg.epochs
    if t.cfg.fsdp:
        adapter = checkpoints(t.out)[-1] / "adapter_model.safetensors" if resume else None
        t.model = fsdp.load_sharded(t.accelerator, lambda: _seeded_model(t.cfg, t.accelerator.device, adapter),
                                    t.cfg)
        t.trainable = [p for p in t.model.parameters() if p.requires_grad]
        t.optimizer = make_optimizer(t.cfg, t.trainable, fsdp.optimizer_name(t.cfg))
        t.scheduler = torch.optim.lr_scheduler.LambdaLR(t.optimizer, lr_lambda(t.cfg, t.total_steps))
        return
    model = _seeded_model(t.cfg, t.accelerator.device)
    t.trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(t.cfg, t.trainable)
    t.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(t.cfg, t.total_steps))
    t.model, t.optimizer = t.accelerator.prepare(model, optimizer)


def _seeded_model(cfg: TrainConfig, device, adapter: Path | None = None):
    """The base with LoRA (its initialisation seeded), and a checkpoint's LoRA weights when resuming under FSDP
    (they go in before sharding; the rest of the state after, in `restore`)."""
    import torch

    torch.manual_seed(cfg.seed)
    model = load_model(cfg, device)
    if adapter is not None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(model, load_file(str(adapter)))
    return model


def restore(t: Trainer, resume: bool) -> TrainState:
    """Step 3: the newest checkpoint's state with --resume; metrics the checkpoint had not seen (or a
    fresh run's leftovers) are forgotten, so no step is logged twice."""
    state = TrainState()
    metrics = t.out / "metrics.jsonl"
    if resume:
        newest = checkpoints(t.out)[-1]
        try:
            state = load_checkpoint(newest, t.peft_model, t.optimizer, t.scheduler,
                                    t.accelerator.process_index if t.cfg.fsdp else None)
        except ConfigError:
            raise
        except Exception as exc:  # torch/safetensors raise many types for a damaged file
            raise ConfigError(f"{newest}: the checkpoint is damaged ({type(exc).__name__}: {str(exc)[:120]}); "
                              "delete this folder to resume from the one before") from None
    if t.main_process and metrics.is_file():
        kept = []
        for line in metrics.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                if json.loads(line)["step"] <= state.step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a kill
        metrics.write_text("".join(x + "\n" for x in kept))
    if t.main_process:
        t.out.mkdir(parents=True, exist_ok=True)
        (t.out / "training_config.yaml").write_text(t.cfg.to_yaml(), encoding="utf-8")
    return state


def optimizer_step(t: Trainer, state: TrainState, group: list[list[int]]) -> None:
    """Step 4a: forward and backward over one group of micro-batches, then one optimizer step."""
    world = t.accelerator.num_processes
    loss_sum = 0.0
    for indices in group:
        ids, labels, mask = (x.to(t.accelerator.device) for x in collate(t.examples, indices, t.pad_id))
        loss = t.model(input_ids=ids, attention_mask=mask, labels=labels).loss  # + router aux loss if on
        t.accelerator.backward(loss / len(group))
        loss_sum += loss.item()
        state.tokens += int(mask.sum()) * world
    if t.cfg.max_grad_norm > 0:  # under FSDP the parameters are DTensors: the norm is over every rank's shard
        t.accelerator.clip_grad_norm_(t.trainable, t.cfg.max_grad_norm)
    t.optimizer.step()
    t.scheduler.step()
    t.optimizer.zero_grad(set_to_none=True)
    state.micro += len(group)
    state.step += 1
    state.loss = loss_sum / len(group)


class MetricsLog:
    """metrics.jsonl, the progress bar and TensorBoard (when installed), on the main process."""

    def __init__(self, t: Trainer, state: TrainState, progress: bool) -> None:
        self.t, self.enabled = t, t.main_process
        self.path = t.out / "metrics.jsonl"
        self.board = _tensorboard(t.out) if self.enabled else None
        self.bar = _bar(t.total_steps, state.step, progress and self.enabled)
        self.started, self.tokens_at_start = time.perf_counter(), state.tokens

    def step(self, state: TrainState) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.started
        tok_s = (state.tokens - self.tokens_at_start) / elapsed if elapsed > 0 else 0.0
        lr = self.t.scheduler.get_last_lr()[0]
        self.bar.set_postfix(loss=f"{state.loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tok_s:,.0f}")
        self.bar.update(1)
        if state.step % self.t.cfg.log_every == 0 or state.step == 1 or state.step >= self.t.total_steps:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": state.step, "epoch": state.epoch, "loss": state.loss, "lr": lr,
                                    "tokens_per_s": tok_s, "tokens": state.tokens,
                                    "world_size": self.t.accelerator.num_processes}) + "\n")
            if self.board is not None:
                for key, value in (("train/loss", state.loss), ("train/lr", lr), ("train/tokens_per_s", tok_s)):
                    self.board.add_scalar(key, value, state.step)

    def close(self) -> None:
        self.bar.close()
        if self.board is not None:
            self.board.close()


def train_loop(t: Trainer, state: TrainState, log: MetricsLog) -> None:
    """Step 4: epochs of micro-batches, a checkpoint every `save_every` steps, until the last step."""
    rank, world = t.accelerator.process_index, t.accelerator.num_processes
    t.model.train()
    while state.step < t.total_steps and state.epoch < t.cfg.epochs:
        batches = epoch_batches(len(t.examples), t.cfg, state.epoch, rank, world)
        while state.micro < len(batches) and state.step < t.total_steps:
            optimizer_step(t, state, batches[state.micro: state.micro + t.cfg.grad_accum])
            if not math.isfinite(state.loss):
                raise ConfigError(f"the loss became {state.loss} at step {state.step}: training diverged (lower "
                                  f"learning_rate {t.cfg.learning_rate:g}); no adapter was written")
            if state.micro >= len(batches):  # the next epoch has its own shuffle
                state.epoch, state.micro = state.epoch + 1, 0
            log.step(state)
            if state.step % t.cfg.save_every == 0 and state.step < t.total_steps:
                checkpoint(t, TrainState(**state.to_json()))
            if state.micro == 0:
                break


def checkpoint(t: Trainer, state: TrainState) -> None:
    """A resumable checkpoint: written by the main process; under FSDP every rank gathers the LoRA weights and
    writes its shard of the optimizer state first."""
    t.accelerator.wait_for_everyone()
    if not t.cfg.fsdp:
        if t.main_process:
            save_checkpoint(t.out, lora_weights(t.peft_model), t.optimizer, t.scheduler,
                            state, t.cfg.keep_checkpoints)
        return
    import torch

    weights = fsdp.lora_state(t)  # a collective: every rank takes part
    shards = t.out / CHECKPOINTS / f".shards-step-{state.step:06d}"
    if t.main_process and shards.exists():  # left by a run killed while saving
        shutil.rmtree(shards)
    t.accelerator.wait_for_everyone()
    fsdp.save_optimizer(shards, t.model, t.optimizer)  # each rank its part
    torch.save(rng_states(), shards / f"rng-rank{t.accelerator.process_index}.pt")
    t.accelerator.wait_for_everyone()
    if t.main_process:
        save_checkpoint(t.out, weights, None, t.scheduler, state, t.cfg.keep_checkpoints, shards=shards)
    t.accelerator.wait_for_everyone()


def finish(t: Trainer, state: TrainState) -> Path:
    """Step 5: the adapter folder (with everything export needs) and the loss curve."""
    t.accelerator.wait_for_everyone()
    adapter = t.out / "adapter"
    weights = fsdp.lora_state(t) if t.cfg.fsdp else None  # gathered from the shards (a collective)
    if t.main_process:
        write_adapter(t.peft_model, adapter, t.cfg, provenance(t, state), weights)
        plot_loss(t.out / "metrics.jsonl", t.out / "loss.png")
    import gc

    t.model = t.optimizer = t.scheduler = None  # DDP's and FSDP's modules hold the process group: gone before it
    gc.collect()  # is (else gloo's threads can outlive it at exit: "terminate called without an active exception")
    t.accelerator.wait_for_everyone()
    t.accelerator.end_training()
    return adapter


def run(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train; returns the final adapter folder."""
    t = prepare_inputs(cfg, resume)
    build_model(t, resume)
    state = restore(t, resume)
    log = MetricsLog(t, state, progress)
    try:
        train_loop(t, state, log)
    finally:
        log.close()
    return finish(t, state)


def provenance(t: Trainer, state: TrainState) -> Provenance:
    cfg = t.cfg
    data_dir = Path(cfg.data) if Path(cfg.data).is_dir() else Path(cfg.data).parent
    upstream = data_dir / "manifest.json"
    data_manifest = json.loads(upstream.read_text()) if upstream.is_file() else None
    m = t.manifest
    return Provenance(
        base=str(cfg.base),
        datasets=[i["file"] for i in data_manifest["inputs"]] if data_manifest else [m["file"]],
        data_file=m["file"], data_sha256=m["sha256"], conversations=m["conversations"], examples=m["examples"],
        too_long_skipped=m["too_long_skipped"], steps=state.step, tokens=state.tokens, final_loss=state.loss,
        quantized_modules=[x for x in mixtral.QLORA_4BIT_MODULES] if cfg.load_in_4bit else [],
        recipe=asdict(cfg), data_manifest=data_manifest)


def write_adapter(model, folder: Path, cfg: TrainConfig, origin: Provenance, weights: dict | None = None) -> None:
    """The PEFT adapter plus everything export needs, written to a temporary folder and renamed. `weights`: the
    LoRA weights when the model holds only a shard of them (FSDP)."""
    with new_folder(folder, force=True) as tmp:
        if weights is None:
            model.save_pretrained(tmp)
        else:
            from safetensors.torch import save_file

            model.peft_config["default"].save_pretrained(tmp)
            save_file(weights, str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
        (tmp / "training_config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
        (tmp / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
        origin.save(tmp)


def plot_loss(metrics: Path, png: Path) -> None:
    if not metrics.is_file():
        return
    from aurora_core.charts import pyplot

    plt = pyplot()

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

