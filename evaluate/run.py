"""`evaluate`: every question of every subject scored from the next-token logits, written as it goes.

The prediction is the official script's candidate token with the highest probability (softmax over the
four candidates). Where the official candidate differs from the token the text itself produces after the
answer cue (C-Eval scores '▁A' after '答案：', where the text has 'A'), the natural one is scored too and
reported beside it. A killed run continues from predictions.jsonl without redoing finished questions.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from aurora_core.errors import AuroraError
from aurora_core.scoring import choice_probs

from . import prompts
from .benchmarks import BENCHMARKS, LETTERS, Subject, load

# The candidate token each official script scores, for a SentencePiece tokenizer.
OFFICIAL_CANDIDATE = {
    "mmlu": ("word-start", 'logprob of " A" (hendrycks/test evaluate.py)'),
    "ceval": ("word-start", 'tokenizer.encode("A")[0] (ceval llama evaluator)'),
    "cmmlu": ("bare", 'convert_tokens_to_ids("A") (CMMLU hf_causal_model.py)'),
}


@dataclass
class EvalSettings:
    model: str
    shots: int = 5
    max_length: int = 2048
    chat: bool = False
    split: dict = field(default_factory=dict)

    def protocol(self, benchmark: str) -> str:
        kind, what = OFFICIAL_CANDIDATE[benchmark]
        wrap = ", wrapped in the model's chat template (candidates '▁A'…)" if self.chat else ""
        drop = {"mmlu": "shots dropped from the end", "ceval": "shots dropped from the end only if needed",
                "cmmlu": "longest shots dropped"}[benchmark]
        return (f"{BENCHMARKS[benchmark].label}, {self.shots}-shot, official prompt, candidates {what}, "
                f"{drop} beyond {self.max_length} tokens{wrap}")


class EvalRunError(AuroraError):
    pass


def natural_ids(backend, benchmark: str) -> list[int]:
    """The token the text itself has for each letter right after the benchmark's answer cue."""
    cue = prompts.ANSWER_CUE[benchmark]
    base = backend.tokenize(cue)
    out = []
    for letter in LETTERS:
        full = backend.tokenize(cue + (" " if benchmark == "mmlu" else "") + letter)
        k = next((i for i, (a, b) in enumerate(zip(base, full)) if a != b), len(base))
        out.append(full[k])
    return out


def read_done(path: Path) -> dict[tuple, dict]:
    """Finished predictions by (benchmark, subject, id); a line cut short by a kill is ignored."""
    done = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
                done[(row["benchmark"], row["subject"], row["id"])] = row
            except (ValueError, KeyError, TypeError):
                continue
    return done


def _drop_partial_line(path: Path) -> None:
    """A kill can leave half a line at the end; cut it, so appended lines start on their own."""
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            path.write_bytes(data[: data.rfind(b"\n") + 1])


def evaluate(backend, data: dict[str, Path], out: Path, settings: EvalSettings, subjects: list[str] | None = None,
             limit: int | None = None, progress: bool = True, force: bool = False) -> dict:
    """Score `data` ({benchmark: folder}) with `backend`; writes out/predictions.jsonl, returns the results."""
    out.mkdir(parents=True, exist_ok=True)
    run_file, pred_file = out / "run.json", out / "predictions.jsonl"
    identity = {"model": settings.model, "shots": settings.shots, "max_length": settings.max_length,
                "chat": settings.chat}
    if run_file.is_file() and not force:
        previous = json.loads(run_file.read_text())
        if {k: previous.get(k) for k in identity} != identity:
            raise EvalRunError(f"{out}: holds a run with other settings ({previous}); pass --force to start over "
                               "or choose another --out")
    elif force:
        pred_file.unlink(missing_ok=True)
    run_file.write_text(json.dumps(identity, indent=2, ensure_ascii=False) + "\n")
    loaded = {b: load(b, folder, settings.split.get(b), subjects, limit, settings.shots) for b, folder in data.items()}
    _drop_partial_line(pred_file)
    done = read_done(pred_file)
    letters = backend.letter_ids()
    count = lru_cache(maxsize=4096)(lambda text: len(backend.tokenize(text)))
    total = sum(len(s.questions) for subs in loaded.values() for s in subs)
    todo = total - sum(1 for b, subs in loaded.items() for s in subs for q in s.questions if (b, s.key, q.id) in done)
    from tqdm import tqdm

    bar = tqdm(total=todo, unit="q", desc="aurora-eval", file=sys.stderr, disable=not progress)
    started, answered = time.perf_counter(), 0
    with open(pred_file, "a", encoding="utf-8") as f:
        for benchmark, subs in loaded.items():
            official = letters["word-start"] if settings.chat else letters[OFFICIAL_CANDIDATE[benchmark][0]]
            natural = letters["word-start"] if settings.chat else natural_ids(backend, benchmark)
            for subject in subs:
                for q in subject.questions:
                    if (benchmark, subject.key, q.id) in done:
                        continue
                    prompt = prompts.build(benchmark, subject, q, count, settings.max_length)
                    logits = backend.logits(_ids(backend, prompt.text, settings.chat))
                    row = _prediction(benchmark, subject, q, prompt, logits, official, natural)
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    f.flush()
                    done[(benchmark, subject.key, q.id)] = row
                    answered += 1
                    bar.update(1)
                    bar.set_postfix(q_s=f"{answered / (time.perf_counter() - started):.2f}")
    bar.close()
    return aggregate(loaded, done, settings)


def _ids(backend, text: str, chat: bool) -> list[int]:
    if not chat:
        return backend.tokenize(text)
    from aurora_core.chat_format import CHAT_TEMPLATE, ChatTemplate, ChatTemplateError, encode_pieces

    source = getattr(getattr(backend, "info", None), "chat_template", None) or CHAT_TEMPLATE
    try:
        pieces = ChatTemplate(source).render([{"role": "user", "content": text}])
    except ChatTemplateError:
        pieces = ChatTemplate(CHAT_TEMPLATE).render([{"role": "user", "content": text}])
    bos = backend.tokenize("")[0]
    eos = backend.llm.token_eos() if hasattr(backend, "llm") else backend.sp.eos_id()
    return encode_pieces(pieces, lambda t: backend.tokenize(t)[1:], bos, eos)


def _prediction(benchmark: str, subject: Subject, q, prompt, logits, official, natural) -> dict:
    probs = choice_probs(logits, official)
    nat = choice_probs(logits, natural)
    return {"benchmark": benchmark, "subject": subject.key, "id": q.id, "answer": q.answer,
            "pred": LETTERS[max(range(4), key=probs.__getitem__)], "probs": dict(zip(LETTERS, probs)),
            "pred_natural": LETTERS[max(range(4), key=nat.__getitem__)], "probs_natural": dict(zip(LETTERS, nat)),
            "shots": prompt.shots}


def aggregate(loaded: dict[str, list[Subject]], done: dict, settings: EvalSettings) -> dict:
    """Per subject, per category, overall (the benchmark's own average and the other one), in percent."""
    results = {"settings": asdict(settings), "benchmarks": {}}
    for benchmark, subs in loaded.items():
        rows = {s.key: [done[(benchmark, s.key, q.id)] for q in s.questions] for s in subs}
        per_subject = {}
        for s in subs:
            r = rows[s.key]
            per_subject[s.key] = {"name": s.name, "category": s.category, "n": len(r),
                                  "acc": 100 * sum(x["pred"] == x["answer"] for x in r) / len(r),
                                  "acc_natural": 100 * sum(x["pred_natural"] == x["answer"] for x in r) / len(r),
                                  "shots_min": min(x["shots"] for x in r)}
        cats: dict[str, list[str]] = {}
        for s in subs:
            for c in s.category.split(","):
                cats.setdefault(c, []).append(s.key)
        macro = sum(v["acc"] for v in per_subject.values()) / len(per_subject)
        n = sum(v["n"] for v in per_subject.values())
        micro = sum(v["acc"] * v["n"] for v in per_subject.values()) / n
        natural_macro = sum(v["acc_natural"] for v in per_subject.values()) / len(per_subject)
        spec = BENCHMARKS[benchmark]
        results["benchmarks"][benchmark] = {
            "label": spec.label, "protocol": settings.protocol(benchmark), "questions": n,
            "average": spec.average,
            "overall": macro if spec.average == "subjects" else micro,
            "overall_other": micro if spec.average == "subjects" else macro,
            "overall_natural_candidates": natural_macro,
            "categories": {c: sum(per_subject[k]["acc"] for k in keys) / len(keys) for c, keys in sorted(cats.items())},
            "subjects": per_subject,
        }
    return results
