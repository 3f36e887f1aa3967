"""Where the next-token logits come from: a GGUF through llama.cpp, or a Hugging Face folder through transformers.

Both tokenize with the model's SentencePiece vocabulary (BOS first) and return the logits after the
last prompt token. On llama.cpp the KV cache keeps the longest common prefix between questions, so a
subject's few-shot prefix is evaluated once and every question continues from it.
"""

from __future__ import annotations

from pathlib import Path

from aurora_core.errors import AuroraError

from .benchmarks import LETTERS


class GGUFBackend:
    kind = "llama.cpp"

    def __init__(self, path: str | Path, max_length: int, threads: int | None = None, reuse_prefix: bool = True,
                 n_batch: int = 512) -> None:
        from aurora_core.llama_runtime import load_llama
        from aurora_core.model_check import check_gguf

        self.info = check_gguf(path, n_ctx=max_length + 8)
        self.llm = load_llama(self.info.path, n_ctx=max_length + 8, n_threads=threads, n_batch=n_batch)
        self.reuse_prefix = reuse_prefix
        self.name = self.info.name
        self.evaluated = 0  # prompt tokens llama.cpp evaluated (not taken from the cache)

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)

    def letter_ids(self) -> dict[str, list[int]]:
        """{"word-start": ids of '▁A'…'▁D', "bare": ids of 'A'…'D'} in this vocabulary."""
        word = [self.llm.tokenize(letter.encode(), add_bos=False, special=False)[-1] for letter in LETTERS]
        # convert_tokens_to_ids("A"): the vocabulary piece spelled "A" (not the byte token <0x41>), else <unk>
        pieces = {self.llm._model.token_get_text(i): i for i in range(self.llm.n_vocab())}
        unk = next((i for text, i in pieces.items() if text == "<unk>"), 0)
        return {"word-start": word, "bare": [pieces.get(letter, unk) for letter in LETTERS]}

    def logits(self, ids: list[int]):
        import numpy as np

        from aurora_core.llama_runtime import evaluate_with_prefix

        llm = self.llm
        ids = ids[-(llm.n_ctx() - 1):]  # what crop does: keep the end
        self.evaluated += len(ids) - evaluate_with_prefix(llm, ids, reuse=self.reuse_prefix)
        # llama-cpp-python 0.3.36 keeps no logits in `scores` unless logits_all: read llama.cpp's own
        import llama_cpp

        last = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return np.ctypeslib.as_array(last, shape=(llm.n_vocab(),)).astype(np.float64)

    def close(self) -> None:
        self.llm.close()


class HFBackend:
    kind = "transformers"

    def __init__(self, folder: str | Path, adapter: str | Path | None = None, load_in_4bit: bool = False) -> None:
        import sentencepiece as spm
        import torch
        from transformers import AutoModelForCausalLM

        folder = Path(folder)
        model_file = folder / "tokenizer.model"
        if not (folder / "config.json").is_file() or not model_file.is_file():
            raise AuroraError(f"{folder}: not a Hugging Face model folder with config.json and tokenizer.model")
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        kwargs = {"dtype": torch.float32}
        if load_in_4bit:
            from transformers import BitsAndBytesConfig

            kwargs = {"dtype": torch.bfloat16, "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16)}
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter)
        self.model = model.eval()
        self.name = folder.name + (f"+{Path(adapter).name}" if adapter else "")
        self.evaluated = 0

    def tokenize(self, text: str) -> list[int]:
        return [self.sp.bos_id()] + self.sp.encode(text)

    def letter_ids(self) -> dict[str, list[int]]:
        return {"word-start": [self.sp.encode(letter)[-1] for letter in LETTERS],
                "bare": [self.sp.piece_to_id(letter) for letter in LETTERS]}

    def logits(self, ids: list[int]):
        import torch

        with torch.no_grad():
            out = self.model(torch.tensor([ids])).logits[0, -1]
        self.evaluated += len(ids)
        return out.double().cpu().numpy()

    def close(self) -> None:
        pass


def open_backend(model: str | Path, max_length: int, adapter: str | None = None, load_in_4bit: bool = False,
                 threads: int | None = None):
    path = Path(model)
    if path.is_file():
        if adapter or load_in_4bit:
            raise AuroraError("--adapter and --load-in-4bit are for a Hugging Face folder, not a GGUF file")
        return GGUFBackend(path, max_length, threads)
    if path.is_dir():
        return HFBackend(path, adapter, load_in_4bit)
    raise AuroraError(f"{path}: no such file or folder; pass a GGUF file or a Hugging Face model folder")
