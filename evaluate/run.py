"""`evaluate`: every question of every subject scored from the next-token logits, written as it goes.

The prediction is the official script's candidate token with the highest probability (softmax over the
four candidates). Where the official candidate differs from the token the text itself produces after the
answer cue (C-Eval scores '▁A' after '答案：', where the text has 'A'), the natural one is scored too and
reported beside it. A killed run continues from predictions.jsonl without redoing finished questions.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from aurora_core.errors import AuroraError
from aurora_core.files import read_json, writable_folder, write_text
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
    fingerprint: str = ""
    """The model's identity (aurora_core.files.fingerprint): a run resumes only with the same model bytes."""

    def protocol(self, benchmark: str, dev_questions: int | None = None) -> str:
        """The protocol in words; `dev_questions` (the most any subject's dev split holds) caps the shots."""
        kind, what = OFFICIAL_CANDIDATE[benchmark]
        shots = f"{self.shots}-shot"
        if dev_questions is not None and dev_questions < self.shots:
            shots = f"{dev_questions}-shot ({self.shots} asked; the dev split holds {dev_questions})"
        wrap = ", wrapped in the model's chat template (candidates '▁A'…)" if self.chat else ""
        drop = {"mmlu": "shots dropped from the end", "ceval": "shots dropped from the end only if needed",
                "cmmlu": "longest shots dropped"}[benchmark]
        return (f"{BENCHMARKS[benchmark].label}, {shots}, official prompt, candidates {what}, "
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


def question_key(q) -> str:
    """A hash of the question, its choices and its answer: an edited answer key is evaluated again."""
    return hashlib.sha256(json.dumps([q.id, q.question, list(q.choices), q.answer],
                                     ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _row_ok(row) -> bool:
    return (isinstance(row, dict) and all(isinstance(row.get(k), str) for k in ("benchmark", "subject", "id", "key"))
            and row.get("pred") in LETTERS and row.get("pred_natural") in LETTERS
            and isinstance(row.get("shots"), int) and not isinstance(row.get("shots"), bool))


def read_done(path: Path) -> dict[tuple, dict]:
    """Finished predictions by (benchmark, subject, id, question key); a line cut short by a kill, or a row
    that is not a whole prediction, is ignored (its question is evaluated again)."""
    done = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if _row_ok(row):
                done[(row["benchmark"], row["subject"], row["id"], row["key"])] = row
    return done


def _check_resume(out: Path, run_file: Path, identity: dict) -> None:
    """A run in `out` continues only with the same model (bytes) and settings."""
    previous = read_json(run_file, "pass --force to start over", EvalRunError)
    if not isinstance(previous, dict):
        raise EvalRunError(f"{run_file}: damaged (not an object); pass --force to start over")
    changed = [k for k in identity if previous.get(k) != identity[k]]
    if changed:
        what = "the model file changed since" if changed == ["fingerprint"] else \
            f"other settings ({', '.join(f'{k}: {previous.get(k)!r}' for k in changed)})"
        raise EvalRunError(f"{out}: holds a run made with {what}; pass --force to start over or choose another "
                           "--out")


def _drop_partial_line(path: Path) -> None:
    """A kill can leave half a line at the end; cut it, so appended lines start on their own."""
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            path.write_bytes(data[: data.rfind(b"\n") + 1])


def evaluate(backend, data: dict[str, Path], out: Path, settings: EvalSettings, subjects: list[str] | None = None,
             limit: int | None = None, progress: bool = True, force: bool = False) -> dict:
    """Score `data` ({benchmark: folder}) with `backend`; writes out/predictions.jsonl, returns the results."""
    if out.exists() and not out.is_dir():
        raise EvalRunError(f"{out}: is a file; give --out a folder")
    out.mkdir(parents=True, exist_ok=True)
    writable_folder(out, "--out", EvalRunError)
    run_file, pred_file = out / "run.json", out / "predictions.jsonl"
    identity = {"model": settings.model, "fingerprint": settings.fingerprint, "shots": settings.shots,
                "max_length": settings.max_length, "chat": settings.chat}
    if run_file.exists() and not force:
        _check_resume(out, run_file, identity)
    elif force:
        pred_file.unlink(missing_ok=True)
    write_text(run_file, json.dumps(identity, indent=2, ensure_ascii=False) + "\n")
    loaded = {b: load(b, folder, settings.split.get(b), subjects, limit, settings.shots) for b, folder in data.items()}
    _drop_partial_line(pred_file)
    done = read_done(pred_file)
    letters = backend.letter_ids()
    count = lru_cache(maxsize=4096)(lambda text: len(backend.tokenize(text)))
    total = sum(len(s.questions) for subs in loaded.values() for s in subs)
    keys = {(b, s.key, q.id): question_key(q) for b, subs in loaded.items() for s in subs for q in s.questions}
    done = {k[:3]: row for k, row in done.items() if keys.get(k[:3]) == k[3]}  # this data's answer key only
    todo = total - len(done)
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
                    row["key"] = keys[(benchmark, subject.key, q.id)]
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
        per_subject = {}
        for s in subs:
            r = [(done[(benchmark, s.key, q.id)], q.answer) for q in s.questions]  # scored against the data's key
            per_subject[s.key] = {"name": s.name, "category": s.category, "n": len(r),
                                  "acc": 100 * sum(x["pred"] == answer for x, answer in r) / len(r),
                                  "acc_natural": 100 * sum(x["pred_natural"] == answer for x, answer in r) / len(r),
                                  "shots_min": min(x["shots"] for x, _ in r)}
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
            "label": spec.label, "protocol": settings.protocol(benchmark, max(len(s.shots) for s in subs)),
            "questions": n,
            "average": spec.average,
            "overall": macro if spec.average == "subjects" else micro,
            "overall_other": micro if spec.average == "subjects" else macro,
            "overall_natural_candidates": natural_macro,
            "categories": {c: sum(per_subject[k]["acc"] for k in keys) / len(keys) for c, keys in sorted(cats.items())},
            "subjects": per_subject,
        }
    return results
