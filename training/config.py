"""The training config: a dataclass whose defaults are the Aurora paper's recipe.

Loaded from YAML (`aurora-train run CONFIG.yaml key=value ...`); an unknown key is an error that
names it and the closest known key, and every value is checked before any model is loaded.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from aurora_core import mixtral
from aurora_core.errors import AuroraError
from aurora_core.files import MAX_JSON_DEPTH, read_text, too_deep


class ConfigError(AuroraError):
    """A config that cannot run; the message names the key (and file) and what to do."""


@dataclass
class TrainConfig:
    """QLoRA fine-tuning of Mixtral-8x7B-Instruct (defaults: the Aurora paper)."""

    base: str = ""
    """Hugging Face Mixtral checkpoint folder."""
    data: str = ""
    """train.jsonl written by aurora-data (or its folder)."""
    out: str = "runs/aurora"
    """Run folder: checkpoints, the final adapter, metrics."""

    # -- the 4-bit base
    load_in_4bit: bool = True
    """Hold the base in bitsandbytes NF4 (QLoRA); false trains on the 16/32-bit base (CPU DDP tests)."""
    double_quant: bool = True
    """Quantize the quantization constants too (QLoRA's double quantisation)."""
    compute_dtype: str = "bfloat16"
    """dtype of the 4-bit layers' matmuls and of the LoRA weights: bfloat16, float16 or float32."""

    # -- LoRA
    lora_r: int = 8
    """LoRA rank."""
    lora_alpha: float = 16.0
    """LoRA alpha; the update is scaled by alpha / r (alpha / sqrt(r) with use_rslora)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA input."""
    use_rslora: bool = False
    """Rank-stabilised LoRA scaling."""
    target_modules: list = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "w1", "w2", "w3"])
    """Modules that get LoRA: attention q/k/v/o and every expert's w1/w2/w3."""
    train_router: bool = False
    """Also train the router (block_sparse_moe.gate) in full precision; frozen by default."""
    router_aux_loss_coef: float = 0.0
    """Weight of Mixtral's load-balancing loss (0: off; the paper does not use it)."""

    # -- optimisation
    optimizer: str = "paged_adamw_8bit"
    """paged_adamw_8bit (paper: 4/8-bit optimizer states), adamw_8bit, paged_adamw or adamw."""
    learning_rate: float = 5e-5
    """Peak learning rate."""
    lr_scheduler: str = "cosine"
    """cosine or constant (after warm-up)."""
    warmup_ratio: float = 0.03
    """Share of the optimizer steps spent warming up linearly."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping (0: off)."""
    epochs: int = 3
    """Passes over the data."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0: run all epochs)."""
    batch_size: int = 2
    """Conversations per micro-batch, per process."""
    grad_accum: int = 4
    """Micro-batches per optimizer step."""
    cutoff_len: int = 1024
    """Longest example in tokens; longer conversations keep their leading whole turns."""
    gradient_checkpointing: bool = True
    """Recompute activations in the backward pass (less memory, ~30 % more compute)."""
    save_every: int = 1000
    """Save a resumable checkpoint every this many optimizer steps."""
    keep_checkpoints: int = 3
    """Newest checkpoints kept (older ones are deleted)."""
    log_every: int = 10
    """Write a metrics line every this many optimizer steps."""
    seed: int = 42
    """Seed for data order, LoRA initialisation and dropout."""
    fsdp: bool = False
    """Shard the (4-bit) base over the processes with PyTorch FSDP instead of one whole copy each (DDP): run under
    `accelerate launch --config_file packaging/accelerate/fsdp-qlora.yaml` or torchrun, 2+ processes."""
    fsdp_wrap: str = "decoder_layer"
    """What FSDP shards as one unit: decoder_layer (MixtralDecoderLayer, the default: less memory, as measured) or
    moe_block (MixtralSparseMoeBlock; the attention then stays whole on every GPU through each step)."""
    fsdp_offload: bool = False
    """Keep the sharded parameters in CPU memory between uses (less GPU memory, more host RAM and time)."""

    def __post_init__(self) -> None:
        """The values are checked wherever a config is made (YAML, key=value, or Python)."""
        self.check_values()

    def validate(self) -> None:
        """check_values plus the paths a run needs."""
        self.check_values()
        for ok, message in ((bool(self.base), "base: set the Mixtral checkpoint folder"),
                            (bool(self.data), "data: set the train.jsonl from aurora-data")):
            if not ok:
                raise ConfigError(message)

    def check_values(self) -> None:
        try:
            self._check_values()
        except TypeError as exc:
            raise ConfigError(f"a config value has the wrong type ({exc})") from None

    def _check_values(self) -> None:
        checks = [
            (self.lora_r >= 1, "lora_r must be at least 1"),
            (0 < self.lora_alpha < math.inf, "lora_alpha must be a positive finite number"),
            (0 <= self.lora_dropout < 1, "lora_dropout must be in [0, 1)"),
            (0 < self.learning_rate < math.inf, "learning_rate must be a positive finite number"),
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.max_steps >= 0, "max_steps must be 0 (all epochs) or a positive number of steps"),
            (self.cutoff_len >= 1, "cutoff_len must be at least 1"),
            (self.keep_checkpoints >= 1, "keep_checkpoints must be at least 1"),
            (0 <= self.max_grad_norm < math.inf, "max_grad_norm must be 0 (off) or a positive finite number"),
            (self.batch_size >= 1 and self.grad_accum >= 1, "batch_size and grad_accum must be at least 1"),
            (self.save_every >= 1 and self.log_every >= 1, "save_every and log_every must be at least 1"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
            (0 <= self.weight_decay, "weight_decay must be 0 or a positive number"),
            (self.lr_scheduler in ("cosine", "constant"), "lr_scheduler must be cosine or constant"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.compute_dtype in ("bfloat16", "float16", "float32"), "compute_dtype must be bfloat16, float16 or float32"),
            (bool(self.target_modules), "target_modules must name at least one module"),
            (self.fsdp_wrap in FSDP_WRAPS, f"fsdp_wrap must be one of {', '.join(FSDP_WRAPS)}"),
            (not self.fsdp_offload or self.fsdp, "fsdp_offload needs fsdp: true"),
        ]
        unknown = [m for m in self.target_modules if m not in LORA_MODULES]
        if unknown:
            hint = difflib.get_close_matches(str(unknown[0]), LORA_MODULES, n=1)
            checks.append((False, f"target_modules: {unknown[0]!r} is no linear module of Mixtral"
                           + (f" (did you mean {hint[0]!r}?)" if hint else f"; choose from {', '.join(LORA_MODULES)}")))
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def to_yaml(self) -> str:
        return yaml.safe_dump(asdict(self), sort_keys=False, allow_unicode=True)


OPTIMIZERS = ("paged_adamw_8bit", "adamw_8bit", "paged_adamw", "adamw")
FSDP_WRAPS = ("decoder_layer", "moe_block")
# Leaf names of Mixtral's linear modules (the names peft's target_modules matches), from aurora_core's table.
LORA_MODULES = tuple(sorted({spec.module for spec in mixtral.ALL_SPECS
                             if spec.module and len(spec.shape(mixtral.MIXTRAL_8X7B)) == 2}))
MAX_WHOLE = 2**31 - 1  # integer keys (steps, sizes, seed) fit a C int


def _coerce(name: str, value, default):
    kind = type(default)
    if isinstance(default, bool):
        if isinstance(value, str):
            if value.lower() in ("true", "1", "yes"):
                return True
            if value.lower() in ("false", "0", "no"):
                return False
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if isinstance(default, list):
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            return value
        raise ConfigError(f"{name}: expected a list, got {value!r}")
    if kind is int:
        if isinstance(value, str):
            try:
                value = float(value) if any(c in value for c in ".eE") else int(value)
            except ValueError:
                raise ConfigError(f"{name}: expected a whole number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value != int(value):
            raise ConfigError(f"{name}: expected a whole number, got {value!r}")
        if abs(value) > MAX_WHOLE:
            raise ConfigError(f"{name}: {value!r} is out of range (at most {MAX_WHOLE:,})")
        return int(value)
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a {kind.__name__}, got {value!r}") from None
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    return value


def _parse_yaml(text: str, where: str):
    """YAML parsed within MAX_JSON_DEPTH levels, or a ConfigError naming `where`."""
    deep = f"{where}: nested more than {MAX_JSON_DEPTH} levels deep; a training config is flat"
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})".replace("\n", " ")) from None
    except RecursionError:
        raise ConfigError(deep) from None
    if too_deep(value):
        raise ConfigError(deep)
    return value


def load_config(path: str | Path | None, overrides: list[str] = (), validate: bool = True) -> TrainConfig:
    """TrainConfig from a YAML file plus `key=value` overrides; unknown keys are errors."""
    known = {f.name: f for f in fields(TrainConfig)}
    defaults = TrainConfig()
    values: dict = {}
    source = "overrides"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        loaded = _parse_yaml(read_text(path, "save the config as UTF-8", ConfigError), str(path)) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of keys to values")
        values.update(loaded)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r}: write key=value")
        values[key.strip()] = _parse_yaml(value, f"override {item!r}") if value.strip() else ""
    resolved = {}
    for key, value in values.items():
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            raise ConfigError(f"{source}: unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        resolved[key] = _coerce(key, value, getattr(defaults, key))
    cfg = TrainConfig(**resolved)
    overridden = {o.split("=", 1)[0].strip() for o in overrides}
    if path is not None:  # relative paths written in a config file are relative to that file
        for key in ("base", "data", "out"):
            v = getattr(cfg, key)
            if v and key not in overridden and not Path(v).is_absolute():
                setattr(cfg, key, str((path.parent / v).resolve()))
    if validate:
        cfg.validate()
    return cfg

