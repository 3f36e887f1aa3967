"""QLoRA across several GPUs with PyTorch FSDP (through accelerate): each process holds a shard of the base, not a
whole copy as under DDP, so two 24 GB cards can train what needs ~27 GiB on one.

`train.py` calls this module only when `fsdp: true`:
- `check_setup` before any model is loaded: the process count and the library versions FSDP-QLoRA needs;
- `load_sharded` loads the base once, on rank 0, and `wrap` shards it with PyTorch FSDP2 (per decoder layer or
  MoE block, optional CPU offload), each unit's weights broadcast from rank 0 just before it is sharded;
- `quant_storage` the dtype bitsandbytes stores 4-bit weights in, equal to the other weights' (FSDP flattens a
  unit's parameters into one tensor of one dtype);
- checkpoints: the LoRA weights gathered on rank 0 (the same PEFT adapter as without FSDP), the optimizer state
  sharded with torch.distributed.checkpoint (one file per rank; gathering it would need the whole state on one
  process) and each rank's RNG states; resuming needs the same number of processes.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
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
    if cfg.fsdp_offload and int(os.environ.get("RANK", "0")) == 0:
        import torch

        if not torch.cuda.is_available():
            print("aurora-train: fsdp_offload keeps the shards in host RAM instead of GPU memory; this machine has no "
                  "CUDA GPU, so they are there already and offload changes nothing but the path", file=sys.stderr)
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


@contextmanager
def loading_from_rank0():
    """transformers' own FSDP loading while `from_pretrained` runs (the switches accelerate's FSDP plugin sets): on
    a GPU each weight is quantized there and moved to host RAM one at a time, on rank 0 only; the other ranks
    quantize too (so they hold the same quantization state) but keep the weights on the meta device, also the
    first process on each other machine. Without it bitsandbytes puts the whole 4-bit base on each process's GPU
    (transformers' `update_device_map`): about 24 GiB for Mixtral-8x7B, more than a 24 GB card has before anything
    is sharded."""
    # transformers loads on LOCAL_RANK 0, one process per machine; the weights come from global rank 0 alone, so on
    # the other machines no process loads them either
    local = "0" if int(os.environ.get("RANK", "0")) == 0 else str(max(1, int(os.environ.get("LOCAL_RANK", "1"))))
    switches = {"ACCELERATE_USE_FSDP": "true", "FSDP_CPU_RAM_EFFICIENT_LOADING": "true", "LOCAL_RANK": local}
    before = {k: os.environ.get(k) for k in switches}
    os.environ.update(switches)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_sharded(accelerator, load, cfg):
    """Load the base once and shard it: rank 0 holds the whole 4-bit base in host RAM (about 24 GiB for
    Mixtral-8x7B), the other ranks none of it; unit by unit, rank 0 broadcasts the weights and every rank keeps
    its shard (accelerate's `fsdp_cpu_ram_efficient_loading`, for FSDP2). One line per process says what it
    held after loading and what it received."""
    import time

    import torch
    from torch.distributed.device_mesh import init_device_mesh

    start = time.time()
    with loading_from_rank0():
        model = load()
    device = torch.device(accelerator.device)
    held = sum(p.nbytes for p in model.parameters() if not p.is_meta)
    received = wrap(model, cfg, init_device_mesh(device.type, (accelerator.num_processes,)), device)
    print(f"aurora-train: rank {accelerator.process_index} held {held / 2**20:.1f} MiB of the base after loading and "
          f"received {received / 2**20:.1f} MiB from rank 0 in {time.time() - start:.1f} s; peak host RAM "
          f"{_peak_rss() / 2**30:.2f} GiB", file=sys.stderr, flush=True)
    return model


def _peak_rss() -> int:
    """This process's peak resident memory in bytes (0 where the platform does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def wrap(model, cfg, mesh, device) -> int:
    """Shard the model in place with PyTorch FSDP2 (`fully_shard`, each parameter split over the processes): each
    decoder layer (or sparse-MoE block) is one unit gathered for its forward and backward, the rest of the model
    the root. Each unit's weights come from rank 0 just before it is sharded, so a GPU holds at most one whole unit
    besides its shards. FSDP2 shards parameter by parameter, so frozen base weights and trained LoRA weights share
    a unit (FSDP1's flat parameters needed them apart). Aurora shards the model itself rather than through
    accelerate's FSDP plugin, which accelerate enables on GPUs only: the path the CPU test runs is the path GPUs
    run. Returns the bytes received from rank 0."""
    import torch
    from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard

    # pinned host memory speeds the copies to the GPU; without CUDA there is nothing to pin for
    offload = CPUOffloadPolicy(pin_memory=torch.cuda.is_available()) if cfg.fsdp_offload else OffloadPolicy()
    name = WRAP_CLASSES[cfg.fsdp_wrap]
    units = [m for m in model.modules() if type(m).__name__ == name]
    if not units:
        raise ConfigError(f"fsdp_wrap {cfg.fsdp_wrap}: the model has no {name}; is the base a Mixtral?")
    received = 0
    for unit in units:
        received += _from_rank0(unit, device)
        unit.register_forward_hook(_every_weight_in_the_graph)  # before fully_shard: it runs while unsharded
        fully_shard(unit, mesh=mesh, offload_policy=offload)
    received += _from_rank0(model, device)  # embeddings, final norm, lm_head (and attention with moe_block)
    fully_shard(model, mesh=mesh, offload_policy=offload)
    return received


def _from_rank0(module, device) -> int:
    """Rank 0's values of the module's parameters not yet sharded, on every rank, on `device`; a collective, in the
    same order on every rank. Rank 0 first sends each weight's name, shape and dtype, so a rank that would receive
    something else stops with one line instead of reading the bytes wrongly. A bitsandbytes 4-bit weight's
    quantization constants come from rank 0 too. Returns the weight bytes received (0 on rank 0)."""
    import torch
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor

    rank0 = dist.get_rank() == 0
    params = [(name, owner, key, param) for name, owner in module.named_modules()
              for key, param in owner._parameters.items() if param is not None and not isinstance(param, DTensor)]
    sent = [[f"{name}.{key}", tuple(p.shape), p.dtype] for name, owner, key, p in params]
    plan = [sent if rank0 else None]
    dist.broadcast_object_list(plan, src=0)
    if [n for n, _, _ in plan[0]] != [n for n, _, _ in sent]:
        mine = next((a for a, b in zip(sent, plan[0]) if a[0] != b[0]), sent[len(plan[0]):][:1])
        raise ConfigError(f"fsdp: rank {dist.get_rank()} holds other weights than rank 0 (first difference: {mine}); "
                          "every process must load the same base with the same LoRA settings")
    received = 0
    for (_, owner, key, param), (_, shape, dtype) in zip(params, plan[0]):
        if rank0:
            data = param.data.to(device)
        else:
            data = torch.empty(shape, dtype=dtype, device=device)
            received += data.nbytes
        dist.broadcast(data, src=0)
        if hasattr(param, "quant_state"):  # bitsandbytes Params4bit: its own attributes travel along
            _quant_state_from_rank0(param.quant_state, device)
            owner._parameters[key] = type(param)(data, **param.__dict__)
        else:
            owner._parameters[key] = torch.nn.Parameter(data, requires_grad=param.requires_grad)
    return received


def _quant_state_from_rank0(state, device) -> None:
    """Rank 0's quantization constants over this rank's (in place): each rank computed its own from the same
    checkpoint, but a machine whose bitsandbytes or GPU rounds differently must not dequantize rank 0's weights
    with its own constants."""
    import torch
    import torch.distributed as dist

    state.to(device)
    nested = [state.state2.absmax, state.state2.code] if state.nested else []
    for tensor in [state.absmax, state.code, *nested, state.offset]:
        if isinstance(tensor, torch.Tensor):
            dist.broadcast(tensor, src=0)


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
