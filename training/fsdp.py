"""QLoRA across several GPUs with PyTorch FSDP (through accelerate): each process holds a shard of the base, not a
whole copy as under DDP, so two 24 GB cards can train what needs ~27 GiB on one.

`train.py` calls this module only when `fsdp: true`:
- `check_setup` before any model is loaded: the process count and the library versions FSDP-QLoRA needs;
- `wrap` shards the model with PyTorch FSDP2 (per decoder layer or MoE block, optional CPU offload);
- `quant_storage` the dtype bitsandbytes stores 4-bit weights in, equal to the other weights' (FSDP flattens a
  unit's parameters into one tensor of one dtype);
- checkpoints: the LoRA weights gathered on rank 0 (the same PEFT adapter as without FSDP), the optimizer state
  sharded with torch.distributed.checkpoint (one file per rank; gathering it would need the whole state on one
  process) and each rank's RNG states; resuming needs the same number of processes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .config import ConfigError

WRAP_CLASSES = {"decoder_layer": "MixtralDecoderLayer", "moe_block": "MixtralSparseMoeBlock"}
# The first versions that shard bitsandbytes 4-bit weights under FSDP (Answer.AI's FSDP-QLoRA, upstreamed): the
# quant-storage dtype (bitsandbytes 0.43.3), its loading (transformers 4.40), peft's FSDP wrap (0.10), accelerate 0.28.
MIN_VERSIONS = {"bitsandbytes": "0.43.3", "transformers": "4.40.0", "peft": "0.10.0", "accelerate": "0.28.0",
                "torch": "2.2.0"}
# Optimizers whose state cannot be saved under FSDP (a paged 8-bit optimizer failed on a sharded checkpoint in
# peft's and accelerate's trackers): replaced, with one line.
NOT_UNDER_FSDP = {"paged_adamw_8bit": "adamw", "adamw_8bit": "adamw", "paged_adamw": "adamw"}


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def check_setup(cfg) -> None:
    """One line for a set-up FSDP cannot run, before any model is loaded."""
    if world_size() < 2:
        raise ConfigError("fsdp: true needs 2 or more processes; start it with accelerate launch --config_file "
                          "packaging/accelerate/fsdp-qlora.yaml (or torchrun --nproc_per_node N)")
    if cfg.fsdp_offload:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("fsdp_offload keeps the shards in host RAM instead of GPU memory; this machine has no "
                              "CUDA GPU (on CPUs the shards are in host RAM already): drop fsdp_offload")
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import Version

    for package, least in MIN_VERSIONS.items():
        try:
            have = version(package)
        except PackageNotFoundError:
            raise ConfigError(f"fsdp: {package} is not installed; pip install '{package}>={least}'") from None
        if Version(have.split("+")[0]) < Version(least):
            raise ConfigError(f"fsdp: {package} {have} cannot shard 4-bit weights; pip install '{package}>={least}'")


def optimizer_name(cfg) -> str:
    """The optimizer to use under FSDP (a one-line notice when the configured one is replaced)."""
    if cfg.optimizer in NOT_UNDER_FSDP:
        replacement = NOT_UNDER_FSDP[cfg.optimizer]
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"aurora-train: optimizer {cfg.optimizer} cannot be checkpointed under FSDP; using {replacement} "
                  "(its state is sharded over the processes instead)", file=sys.stderr)
        return replacement
    return cfg.optimizer


def quant_storage(cfg):
    """bitsandbytes' storage dtype for the 4-bit weights: the compute dtype, as the unquantized weights'."""
    import torch

    return getattr(torch, cfg.compute_dtype)


def load_in_turn(accelerator, load, cfg):
    """Load and shard the model one process after the other: each process reads the whole (4-bit) base into host
    RAM, shards it and drops the rest before the next one starts, so host RAM holds one whole copy at a time, not
    one per process (Mixtral-8x7B: about 24 GiB, not N x 24). Loading takes N times as long. One line per process
    says when it loaded."""
    import time

    import torch
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(torch.device(accelerator.device).type, (accelerator.num_processes,))  # all ranks
    model = None
    for turn in range(accelerator.num_processes):
        if turn == accelerator.process_index:
            start = time.time()
            model = wrap(load(), cfg, mesh)
            import gc

            gc.collect()
            print(f"aurora-train: rank {turn} loaded and sharded the base from {start:.3f} to {time.time():.3f} "
                  f"(ranks load in turn)", file=sys.stderr, flush=True)
        accelerator.wait_for_everyone()
    return model


def wrap(model, cfg, mesh):
    """The model sharded with PyTorch FSDP2 (`fully_shard`, each parameter split over the processes): each decoder
    layer (or sparse-MoE block) is one unit gathered for its forward and backward, the rest of the model the root.
    FSDP2 shards parameter by parameter, so frozen base weights and trained LoRA weights share a unit (FSDP1's flat
    parameters needed them apart). Aurora shards the model itself rather than through accelerate's FSDP plugin,
    which accelerate enables on GPUs only: the path the CPU test runs is the path GPUs run."""
    from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard

    offload = CPUOffloadPolicy() if cfg.fsdp_offload else OffloadPolicy()
    name = WRAP_CLASSES[cfg.fsdp_wrap]
    units = [m for m in model.modules() if type(m).__name__ == name]
    if not units:
        raise ConfigError(f"fsdp_wrap {cfg.fsdp_wrap}: the model has no {name}; is the base a Mixtral?")
    for unit in units:  # fully_shard moves each unit to the mesh's GPU as it shards it: never the whole model
        unit.register_forward_hook(_every_weight_in_the_graph)  # before fully_shard: it runs while unsharded
        fully_shard(unit, mesh=mesh, offload_policy=offload)
    fully_shard(model, mesh=mesh, offload_policy=offload)
    return model


def _every_weight_in_the_graph(module, _args, output):
    """Add 0 x every trainable weight of the unit to its output. Mixtral skips the experts no token was routed to,
    so their LoRA weights get no gradient; FSDP2 reduce-scatters only the weights that have one, and when two ranks'
    routers chose differently their collectives no longer match (gloo: "Received data size doesn't match"). With
    this every weight has a gradient (zero where unused) on every rank."""
    zero = sum(p.sum() for p in module.parameters() if p.requires_grad) * 0.0
    if isinstance(output, tuple):
        return (output[0] + zero, *output[1:])
    return output + zero


# ---------------------------------------------------------------- checkpoints


def lora_state(t) -> dict:
    """The LoRA weights gathered from every rank (a collective: every process calls it); full on rank 0."""
    from peft import get_peft_model_state_dict
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(t.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not t.accelerator.is_main_process:
        return {}
    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(t.model, state_dict=full).items()}


def save_optimizer(folder: Path, model, optimizer) -> None:
    """Every rank's part of the optimizer state (torch.distributed.checkpoint: one file per rank, a collective)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    dcp.save({"optimizer": get_optimizer_state_dict(model, optimizer)}, checkpoint_id=str(folder / "optimizer"))


def load_optimizer(folder: Path, model, optimizer) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    state = {"optimizer": get_optimizer_state_dict(model, optimizer)}
    dcp.load(state, checkpoint_id=str(folder / "optimizer"))
    set_optimizer_state_dict(model, optimizer, state["optimizer"])
