"""Peak GPU memory and training tokens/s of QLoRA on a Mixtral-8x7B-shaped model, built directly in 4-bit.

Nothing needs 93 GB of host RAM or disk: the model is created on the meta device, then each
attention and expert projection is drawn at random, layer by layer, and quantized straight to
bitsandbytes NF4 (double quantisation) on the GPU; embeddings, norms, router and lm_head are
materialised as in training. Then, for each recipe, LoRA + gradient checkpointing + paged 8-bit AdamW
train a few steps on random tokens at batch 2 x 1024, and the table gives peak GPU memory
(torch.cuda.max_memory_allocated) and tokens/s next to `aurora-train estimate`'s figure:

  (a) Aurora's published recipe: r=8, alpha=16 on q_proj, v_proj
  (b) this project's default: r=8, alpha=16 on q/k/v/o and every expert's w1/w2/w3

    python bench/qlora_gpu.py                       # CUDA GPU, the real Mixtral-8x7B shape
    python bench/qlora_gpu.py --device cpu --small  # reduced shape on the CPU (what the test runs)

More than one GPU (`--distributed`, under torchrun): the default recipe under DDP (a whole 4-bit copy per GPU)
and under FSDP with each wrap, decoder_layer and moe_block (aurora_training.fsdp.wrap: the base sharded from rank
0's copy, as `aurora-train run` with fsdp: true), one after the other in the same processes, with the highest
per-GPU peak, the tokens/s of all GPUs together, the weights a process held whole at once, and
`aurora-train estimate --gpus N [--fsdp]` beside each:

    torchrun --nproc_per_node 2 bench/qlora_gpu.py --distributed            # 2 CUDA GPUs
    torchrun --nproc_per_node 2 bench/qlora_gpu.py --distributed --device cpu --small   # gloo (the test)
    torchrun --nproc_per_node 2 bench/qlora_gpu.py --distributed --device cpu --quarter --rows moe_block
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from aurora_core.mixtral import MIXTRAL_8X7B, QLORA_4BIT_MODULES, MixtralShape
from aurora_training.config import TrainConfig
from aurora_training.estimate import estimate

SMALL = MixtralShape(vocab_size=2000, hidden_size=256, intermediate_size=512, num_layers=2, num_heads=4,
                     num_kv_heads=2, num_experts=4, experts_per_token=2)
# Mixtral-8x7B's proportions at a quarter of its width and vocabulary, 4 layers (CPU runs of the FSDP wraps)
QUARTER = MixtralShape(vocab_size=8000, hidden_size=1024, intermediate_size=3584, num_layers=4, num_heads=8,
                       num_kv_heads=2, num_experts=8, experts_per_token=2)
RECIPES = {
    "(a) Aurora published: r=8 on q_proj, v_proj": ["q_proj", "v_proj"],
    "(b) aurora-train default: r=8 on q/k/v/o + experts' w1/w2/w3": ["q_proj", "k_proj", "v_proj", "o_proj",
                                                                      "w1", "w2", "w3"],
}
def build_4bit(shape: MixtralShape, device: torch.device, dtype=torch.bfloat16, hold: str | None = None):
    """The model in 4-bit, quantized on `device`. `hold` as aurora-train's FSDP loading: "cpu" keeps the weights in
    host RAM (rank 0), "meta" keeps only their quantization state (the other ranks, which receive the weights)."""
    import bitsandbytes as bnb
    from accelerate import init_empty_weights
    from transformers import MixtralConfig, MixtralForCausalLM

    config = MixtralConfig(vocab_size=shape.vocab_size, hidden_size=shape.hidden_size,
                           intermediate_size=shape.intermediate_size, num_hidden_layers=shape.num_layers,
                           num_attention_heads=shape.num_heads, num_key_value_heads=shape.num_kv_heads,
                           num_local_experts=shape.num_experts, num_experts_per_tok=shape.experts_per_token,
                           max_position_embeddings=4096, use_cache=False)
    with init_empty_weights():
        model = MixtralForCausalLM(config)
    # drawn where it is quantized (on a GPU: seconds, not minutes), from one seed: every rank draws the same weights,
    # so the quantization constants of the ranks that keep none (hold="meta") match the weights rank 0 sends
    g = torch.Generator(device=device).manual_seed(0)
    for layer in model.model.layers:  # one layer at a time: at most one projection in 16-bit at once
        for name, module in list(layer.named_modules()):
            leaf = name.rsplit(".", 1)[-1]
            if leaf not in QLORA_4BIT_MODULES:
                continue
            parent = layer.get_submodule(name.rsplit(".", 1)[0]) if "." in name else layer
            w = (torch.randn(module.out_features, module.in_features, generator=g, device=device) * 0.02).to(dtype)
            q = bnb.nn.Linear4bit(module.in_features, module.out_features, bias=False, compute_dtype=dtype,
                                  compress_statistics=True, quant_type="nf4", device="meta")
            q.weight = bnb.nn.Params4bit(w, requires_grad=False, compress_statistics=True, quant_type="nf4")
            q = q.to(device)  # quantized here
            q.quant_state = q.weight.quant_state  # on the module too: FSDP's sharding drops it from the weight
            if hold is not None:
                q.weight = type(q.weight)(q.weight.data.to(hold), **q.weight.__dict__)
            setattr(parent, leaf, q)
            del w
    # Everything still on meta (embeddings, norms, router, lm_head, rotary buffers): materialise and draw.
    for module in model.modules():
        for pname, p in list(module.named_parameters(recurse=False)):
            if p.device.type == "meta" and hold != "meta":
                data = torch.empty(p.shape, dtype=dtype, device=hold or device)
                data.normal_(0, 0.02) if p.dim() > 1 else data.fill_(1.0)
                setattr(module, pname, torch.nn.Parameter(data, requires_grad=False))
    model.model.rotary_emb = type(model.model.rotary_emb)(config=config, device=device)
    model.config.quantization_config = {"load_in_4bit": True}
    model.is_loaded_in_4bit = True
    return model


class GatheredPeak:
    """The most parameter bytes a process held unsharded at once: FSDP2 registers a unit's gathered weights on its
    modules in place of the sharded DTensors, so at each module's forward (also the recomputation in backward,
    with gradient checkpointing) the plain tensors among the model's parameters are what is gathered. Device
    independent: the same on CPUs as on GPUs."""

    def __init__(self, model):
        from torch.distributed.tensor import DTensor

        self.peak = 0

        def sample(*_):  # the parameters registered now: FSDP swaps them as it gathers and frees
            self.peak = max(self.peak, sum(p.nbytes for p in model.parameters() if not isinstance(p, DTensor)))

        self.handles = [m.register_forward_pre_hook(sample) for m in model.modules()
                        if next(m.parameters(recurse=False), None) is not None]

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


def measure(shape: MixtralShape, targets: list[str], device: torch.device, steps: int, seq: int, batch: int,
            mode: str = "single", wrap: str = "decoder_layer"):
    """`mode`: single (one process), ddp or fsdp (under torchrun: every process runs it), sharded per `wrap`."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    from aurora_training.qlora import lora_config, quantized_share
    from aurora_training.train import make_optimizer

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    cfg = TrainConfig(base="-", data="-", target_modules=targets, fsdp=mode == "fsdp", fsdp_wrap=wrap)
    hold = ("cpu" if torch.distributed.get_rank() == 0 else "meta") if mode == "fsdp" else None
    model = build_4bit(shape, device, hold=hold)  # FSDP: rank 0 holds the weights in host RAM and sends them
    share = quantized_share(model)
    if mode == "fsdp":  # as aurora-train: no fp32 cast of the norms (one dtype per unit), then sharded
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
        model = get_peft_model(model, lora_config(cfg))
        from aurora_training import fsdp

        from torch.distributed.device_mesh import init_device_mesh

        fsdp.wrap(model, cfg, init_device_mesh(device.type, (torch.distributed.get_world_size(),)), device)
        gathered = GatheredPeak(model)
    else:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
        model = get_peft_model(model, lora_config(cfg))
        if mode == "ddp":
            model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda"
                                                              else None, find_unused_parameters=True)
    optimizer = make_optimizer(cfg, [p for p in model.parameters() if p.requires_grad],
                               "adamw" if mode == "fsdp" else None)
    ids = torch.randint(3, shape.vocab_size, (batch, seq), device=device)
    model.train()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        if mode == "fsdp":
            gathered.remove()  # sampled in the first step (warm-up, not timed) only: it costs Python time
    tok_s = batch * seq / (sum(times[1:]) / max(1, len(times) - 1)) if len(times) > 1 else batch * seq / times[0]
    if mode == "fsdp":
        held = gathered.peak
    else:  # the whole model, all the time
        held = sum(p.nbytes for p in model.parameters())
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    est_cfg = TrainConfig(base="-", data="-", target_modules=targets, batch_size=batch, cutoff_len=seq,
                          optimizer="adamw" if mode == "fsdp" else "paged_adamw_8bit", fsdp_wrap=wrap)
    if mode == "single":
        est = dict(estimate(est_cfg, shape))["total"]
    else:
        from aurora_training.estimate import per_gpu

        est = per_gpu(est_cfg, torch.distributed.get_world_size(), mode == "fsdp", s=shape)[0][-1][1]
    del model, optimizer
    return peak, tok_s, est, share, loss.item(), held


def distributed(args, shape: MixtralShape) -> int:
    """DDP and FSDP side by side under torchrun: the highest per-process peak, all processes' tokens/s."""
    backend = "nccl" if args.device == "cuda" else "gloo"
    torch.distributed.init_process_group(backend)
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    device = torch.device(f"cuda:{int(__import__('os').environ.get('LOCAL_RANK', 0))}" if args.device == "cuda"
                          else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    targets = list(RECIPES.values())[1]
    rows = []
    for row in args.rows.split(","):
        mode, wrap = ("ddp", None) if row == "ddp" else ("fsdp", row)
        torch.manual_seed(rank)  # each rank its own tokens, as each takes its own micro-batches
        peak, tok_s, est, share, loss, held = measure(shape, targets, device, args.steps, args.seq, args.batch, mode,
                                                      wrap or "decoder_layer")
        stats = torch.tensor([peak, tok_s, held], dtype=torch.float64)
        gathered = [torch.zeros(3, dtype=torch.float64) for _ in range(world)]
        torch.distributed.all_gather(gathered, stats)
        label = "DDP" if mode == "ddp" else f"FSDP {wrap}"
        rows.append((label, max(g[0].item() for g in gathered), sum(g[1].item() for g in gathered), est, share, loss,
                     max(g[2].item() for g in gathered)))
    if rank == 0:
        kind = "peak GPU memory per GPU" if device.type == "cuda" else "peak RSS per process (all rows so far)"
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        print(f"{world} x {name}; shape: {shape}; batch {args.batch} x {args.seq} per process, {args.steps} steps")
        print(f"\n| {world} processes, default recipe | {kind} GiB | estimate GiB | tokens/s (all) | 4-bit share "
              "| final loss | weights held whole at once MiB |\n|---|---:|---:|---:|---:|---:|---:|")
        for label, peak, tok_s, est, share, loss, held in rows:
            print(f"| {label} | {peak / 2**30:.2f} | {est / 2**30:.2f} | {tok_s:,.0f} | {share:.3f} | "
                  f"{loss:.3f} | {held / 2**20:,.1f} |", flush=True)
    import gc

    gc.collect()  # DDP's and FSDP's wrappers hold the process group: gone before it is (else gloo's threads can
    torch.distributed.barrier()  # outlive it at exit: "terminate called without an active exception", seen 1 in 4)
    torch.distributed.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="reduced shape (2 layers, hidden 256, 4 experts)")
    parser.add_argument("--quarter", action="store_true",
                        help="Mixtral-8x7B's proportions at a quarter of its width, 4 layers (for CPU runs)")
    parser.add_argument("--steps", type=int, default=4, help="training steps per recipe (the first is warm-up)")
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--only", choices=("a", "b"), help="measure one recipe")
    parser.add_argument("--distributed", action="store_true", help="under torchrun: DDP and FSDP side by side")
    parser.add_argument("--rows", default="ddp,decoder_layer,moe_block",
                        help="--distributed: which runs, in order (ddp, and the FSDP wraps decoder_layer, moe_block); "
                             "on CPUs run one per command, since a process's peak RSS spans every row it ran")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    shape = SMALL if args.small else QUARTER if args.quarter else MIXTRAL_8X7B
    if args.distributed:
        return distributed(args, shape)
    kind = "peak GPU memory" if device.type == "cuda" else "peak process RSS"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; shape: {shape}; batch {args.batch} x {args.seq}, {args.steps} steps")
    print()
    print(f"| recipe | {kind} GiB | estimate GiB | tokens/s | 4-bit share | final loss |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, targets in RECIPES.items():
        if args.only and not label.startswith(f"({args.only})"):
            continue
        peak, tok_s, est, share, loss, _ = measure(shape, targets, device, args.steps, args.seq, args.batch)
        print(f"| {label} | {peak / 2**30:.2f} | {est / 2**30:.2f} | {tok_s:,.0f} | {share:.3f} | {loss:.3f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
