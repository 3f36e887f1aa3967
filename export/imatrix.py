"""An importance matrix from text: per-input-column sums of squared activations of every linear weight.

    aurora-export imatrix --base DIR [--adapter DIR] --text calibration.txt --out imatrix.gguf

The merged model (base + adapter) runs layer by layer: one decoder layer's weights are in memory at a
time (built on the meta device, filled from the streamed merge, emptied again), with PyTorch hooks on
every linear input. Experts count the tokens routed to each of them. The result is llama.cpp's own
`imatrix.gguf`: `general.type = "imatrix"`, `imatrix.datasets`, `imatrix.chunk_count`,
`imatrix.chunk_size`; tensors `<weight>.in_sum2` ([n_in, n_mat]) and `<weight>.counts` ([1, n_mat])
under GGUF tensor names. `aurora-export gguf --imatrix` hands it to llama.cpp's quantizer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from aurora_core import mixtral
from aurora_core.errors import AuroraError


class ImatrixError(AuroraError):
    pass


SHIPPED = {"zh": "calibration_zh.txt", "en": "calibration_en.txt", "heldout-zh": "heldout_zh.txt"}


def shipped_text(name: str) -> Path:
    """A calibration text that ships with Aurora: zh (Chinese), en (English), heldout-zh (for evaluation)."""
    return Path(str(resources.files("aurora_export").joinpath("assets", SHIPPED[name])))


@dataclass
class Imatrix:
    sums: dict[str, np.ndarray] = field(default_factory=dict)  # GGUF weight name -> (n_mat, n_in) float64
    counts: dict[str, np.ndarray] = field(default_factory=dict)  # -> (n_mat,) float64
    datasets: list[str] = field(default_factory=list)
    chunk_count: int = 0
    chunk_size: int = 0
    path: Path | None = None  # the file it was read from, for messages

    def check_against(self, s) -> None:
        """Every weight it covers exists in a model of shape `s` with the same input width and matrix count."""
        from aurora_core import mixtral

        widths = {}
        for ref in mixtral.tensors(s):
            shape = ref.shape(s)
            if len(shape) == 2:
                widths[ref.gguf_name] = (s.num_experts if ref.xid is not None else 1, shape[-1])
        for name, sums in self.sums.items():
            if widths.get(name) != sums.shape:
                want = widths.get(name)
                raise ImatrixError(f"{self.path}: {name} is {sums.shape[0]} x {sums.shape[1]} here but "
                                   + (f"{want[0]} x {want[1]} in this model" if want else "not in this model")
                                   + "; make the importance matrix for this base with aurora-export imatrix")

    def add(self, name: str, n_mat: int, mat: int, x) -> None:
        """Accumulate the squared activations x (..., n_in) of matrix `mat` of weight `name`."""
        x = x.detach().reshape(-1, x.shape[-1]).double()
        if name not in self.sums:
            self.sums[name] = np.zeros((n_mat, x.shape[-1]))
            self.counts[name] = np.zeros(n_mat)
        self.sums[name][mat] += (x * x).sum(0).numpy()
        self.counts[name][mat] += x.shape[0]

    def values(self, name: str) -> np.ndarray:
        """What the quantizer gets: mean squared activation per column (1 where a matrix saw no token)."""
        sums, counts = self.sums[name], self.counts[name]
        out = np.ones_like(sums)
        seen = counts > 0
        out[seen] = sums[seen] / counts[seen, None]
        return out.astype(np.float32)


def text_of(path: Path) -> str:
    """Plain text, or the conversations of an aurora-data JSONL file (their turns' text)."""
    if path.is_dir():
        raise ImatrixError(f"{path}: is a folder; pass --text the text files inside it")
    if not path.is_file():
        raise ImatrixError(f"{path}: no such text file")
    data = path.read_bytes()
    if data.startswith(b"GGUF"):
        raise ImatrixError(f"{path}: is a GGUF file, not calibration text; pass a UTF-8 text file")
    if b"\0" in data:
        raise ImatrixError(f"{path}: holds NUL bytes, so it is binary, not text; pass a UTF-8 text file")
    try:
        raw = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImatrixError(f"{path}: not UTF-8 text (byte {exc.start}); convert it to UTF-8 "
                           "(e.g. iconv -f GBK -t UTF-8)") from None
    if path.suffix == ".jsonl":
        parts = []
        for line in raw.splitlines():
            try:
                row = json.loads(line)
                parts += [t["content"] for t in row.get("turns", []) if isinstance(t["content"], str)]
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
                continue
        raw = "\n".join(parts)
    if not raw.strip():
        raise ImatrixError(f"{path}: holds no text" + (" (no aurora-data conversations)" if path.suffix == ".jsonl"
                                                          else "") + "; pass calibration text")
    return raw


def token_chunks(ids: list[int], bos: int, chunk_size: int, whole: bool = True) -> list[list[int]]:
    """Chunks as llama.cpp's imatrix and perplexity tools make them: BOS, then chunk_size - 1 tokens of the
    text. `whole`: only full chunks (a short text gives its one chunk); otherwise every chunk of more than 8."""
    step = chunk_size - 1
    chunks = [[bos] + ids[i:i + step] for i in range(0, max(len(ids), 1), step)]
    if whole:
        return [c for c in chunks if len(c) == chunk_size] or chunks[:1]
    return [c for c in chunks if len(c) > 9]


def chunks_of(texts: list[str], sp, chunk_size: int, max_chunks: int | None) -> list[list[int]]:
    """The calibration texts as whole chunks, at most `max_chunks`."""
    chunks = token_chunks(sp.encode("\n".join(texts)), sp.bos_id(), chunk_size)
    return chunks[:max_chunks] if max_chunks else chunks


def collect(merger, chunks: list[list[int]], progress: bool = True) -> Imatrix:
    """Run the merged model over `chunks` one decoder layer at a time, hooks on every linear input."""
    import torch
    from tqdm import tqdm
    from transformers import MixtralConfig, MixtralForCausalLM
    from transformers.models.mixtral.modeling_mixtral import MixtralRotaryEmbedding

    from .checkpoint import keep_big_buffers_out_of_the_heap

    keep_big_buffers_out_of_the_heap()
    base = merger.base
    s = base.shape
    config = MixtralConfig(**{k: v for k, v in base.config.items() if k not in ("architectures",)})
    config._attn_implementation = "sdpa"
    with torch.device("meta"):
        model = MixtralForCausalLM(config)
    result = Imatrix(chunk_count=len(chunks), chunk_size=len(chunks[0]) if chunks else 0)
    embed = merger.tensor("model.embed_tokens.weight")
    hidden = [embed[torch.tensor(c)].unsqueeze(0) for c in chunks]
    del embed
    rotary = MixtralRotaryEmbedding(config=config)
    positions = [torch.arange(h.shape[1]).unsqueeze(0) for h in hidden]
    bar = tqdm(total=s.num_layers + 1, unit="layer", desc="imatrix", disable=not progress)
    with torch.no_grad():
        for bid in range(s.num_layers):
            layer = model.model.layers[bid]
            layer.to_empty(device="cpu")
            for name, p in layer.named_parameters():
                p.copy_(merger.tensor(f"model.layers.{bid}.{name}"))
            handles = _hooks(layer, bid, s, result)
            for i, h in enumerate(hidden):
                out = layer(h, position_embeddings=rotary(h, positions[i]), attention_mask=None,
                            position_ids=positions[i])
                hidden[i] = out[0] if isinstance(out, tuple) else out
            for handle in handles:
                handle.remove()
            layer.to("meta")
            bar.update(1)
        norm_w = merger.tensor("model.norm.weight")  # the output layer's input needs the norm, not lm_head
        for h in hidden:
            x = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + s.rms_norm_eps) * norm_w
            result.add("output.weight", 1, 0, x)
        bar.update(1)
    bar.close()
    return result


def _hooks(layer, bid: int, s, result: Imatrix) -> list:
    import torch

    handles = []
    for name, module in layer.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        ref = mixtral.lookup(f"model.layers.{bid}.{name}.weight")
        if ref is None:
            continue
        n_mat, mat = (s.num_experts, ref.xid) if ref.xid is not None else (1, 0)

        def hook(_module, inputs, gguf=ref.gguf_name, n_mat=n_mat, mat=mat):
            result.add(gguf, n_mat, mat, inputs[0])

        handles.append(module.register_forward_pre_hook(hook))
    return handles


def write(imatrix: Imatrix, path: Path) -> Path:
    """llama.cpp's imatrix.gguf, written through a temporary file."""
    import gguf

    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_type("imatrix")
    writer.add_array("imatrix.datasets", imatrix.datasets)
    writer.add_uint32("imatrix.chunk_count", imatrix.chunk_count)
    writer.add_uint32("imatrix.chunk_size", imatrix.chunk_size)
    for name in sorted(imatrix.sums):
        writer.add_tensor(f"{name}.in_sum2", imatrix.sums[name].astype(np.float32))
        writer.add_tensor(f"{name}.counts", imatrix.counts[name].astype(np.float32).reshape(-1, 1))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read(path: Path) -> Imatrix:
    """An imatrix.gguf (ours or llama-imatrix's); ImatrixError naming the file when it is not one."""
    import gguf

    from aurora_core.gguf_header import GGUFHeaderError, read_header
    from aurora_core.model_check import check_complete

    if path.is_dir():
        raise ImatrixError(f"{path}: is a folder, not an importance matrix; pass the imatrix.gguf file")
    if not path.is_file():
        raise ImatrixError(f"{path}: no such file; make one with aurora-export imatrix")
    try:
        header = read_header(path)
    except GGUFHeaderError as exc:
        raise ImatrixError(str(exc)) from None
    check_complete(header, "make it again with aurora-export imatrix", ImatrixError)
    if header.get("general.type") != "imatrix":
        raise ImatrixError(f"{path}: general.type is {header.get('general.type')!r}, not an importance matrix; "
                           "make one with aurora-export imatrix")
    reader = gguf.GGUFReader(str(path))
    out = Imatrix(chunk_count=int(header.get("imatrix.chunk_count", 0)),
                  chunk_size=int(header.get("imatrix.chunk_size", 0)), path=path)
    tensors = {t.name: np.asarray(t.data, dtype=np.float64) for t in reader.tensors}
    for name, data in tensors.items():
        if not np.isfinite(data).all() or (data < 0).any():
            raise ImatrixError(f"{path}: tensor {name} holds negative, NaN or inf values (sums of squares and counts "
                               "cannot be); make the importance matrix again")
        if name.endswith(".in_sum2"):
            weight = name[: -len(".in_sum2")]
            counts = tensors.get(weight + ".counts")
            if counts is None:
                raise ImatrixError(f"{path}: {weight} has in_sum2 but no counts")
            out.sums[weight] = data.reshape(counts.size, -1)
            out.counts[weight] = counts.reshape(-1)
    if not out.sums:
        raise ImatrixError(f"{path}: holds no importance data")
    return out


def build(base: str | Path, adapter: str | Path | None, texts: list[Path], out: Path, chunk_size: int = 512,
          max_chunks: int | None = None, progress: bool = True) -> Path:
    """The library entry: collect an importance matrix for base + adapter on `texts` and write it."""
    import sentencepiece as spm

    from .merge import Merger

    if chunk_size < 16:
        raise ImatrixError("--chunk-size must be at least 16 tokens")
    merger = Merger.open(base, adapter)
    sp = spm.SentencePieceProcessor(model_file=str(Path(base) / "tokenizer.model"))
    chunks = chunks_of([text_of(Path(t)) for t in texts], sp, chunk_size, max_chunks)
    imatrix = collect(merger, chunks, progress)
    imatrix.datasets = [Path(t).name for t in texts]
    return write(imatrix, out)
