"""Prompts exactly as each benchmark's official script builds them, and each script's way to make them fit.

    MMLU    hendrycks/test evaluate.py: format_subject, format_example, gen_prompt; shots dropped from
            the end until the prompt fits (crop to 2,048 tokens)
    C-Eval  hkust-nlp/ceval code/evaluator_series/evaluators/llama.py: format_example,
            generate_few_shot_prompt (the subject's Chinese name); no dropping there, so here shots are
            dropped from the end only when the prompt would not fit at all (reported)
    CMMLU   haonan-li/CMMLU src/mp_utils.py: format_example, gen_prompt; the longest shots are dropped
            while they exceed max_length minus the header and question (counted with the tokenizer's BOS)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .benchmarks import LETTERS, Question, Subject


def _choices(q: Question) -> str:
    return "".join(f"\n{letter}. {text}" for letter, text in zip(LETTERS, q.choices))


def mmlu_subject(subject: str) -> str:
    """hendrycks' format_subject: ' abstract algebra' (a leading space: 'about  abstract algebra.')."""
    return "".join(" " + part for part in subject.split("_"))


def mmlu_header(subject: Subject) -> str:
    return f"The following are multiple choice questions (with answers) about {mmlu_subject(subject.name)}.\n\n"


def mmlu_example(q: Question, include_answer: bool = True) -> str:
    return q.question + _choices(q) + "\nAnswer:" + (f" {q.answer}\n\n" if include_answer else "")


def ceval_header(subject: Subject) -> str:
    return f"以下是中国关于{subject.name}考试的单项选择题，请选出其中的正确答案。\n\n"


def ceval_example(q: Question, include_answer: bool = True) -> str:
    return q.question + _choices(q) + ("\n答案：" + q.answer + "\n\n" if include_answer else "\n答案：")


def cmmlu_header(subject: Subject) -> str:
    return f"以下是关于{subject.name}的单项选择题，请直接给出正确答案的选项。\n\n"


def cmmlu_example(q: Question, include_answer: bool = True) -> str:
    return "题目：" + q.question + _choices(q) + "\n答案是：" + (f"{q.answer}\n\n" if include_answer else "")


FORMATS = {"mmlu": (mmlu_header, mmlu_example), "ceval": (ceval_header, ceval_example),
           "cmmlu": (cmmlu_header, cmmlu_example)}
ANSWER_CUE = {"mmlu": "\nAnswer:", "ceval": "\n答案：", "cmmlu": "\n答案是："}


@dataclass(frozen=True)
class Prompt:
    prefix: str  # the header and the shots (the same for a subject's questions unless shots were dropped)
    question: str
    shots: int

    @property
    def text(self) -> str:
        return self.prefix + self.question


def build(benchmark: str, subject: Subject, q: Question, count: Callable[[str], int], max_length: int) -> Prompt:
    """The official prompt for `q`, shots dropped by the benchmark's own rule when it exceeds `max_length`
    tokens (`count` tokenizes as the model does, BOS included)."""
    header_of, example_of = FORMATS[benchmark]
    header, end = header_of(subject), example_of(q, include_answer=False)
    shots = [example_of(s) for s in subject.shots]
    if benchmark == "cmmlu":
        start_end = count(header) + count(end)
        if start_end > max_length:
            return Prompt("", end, 0)  # mp_utils: "remove the prompt at the beginning"
        kept = [(s, count(s)) for s in shots]
        while kept and sum(n for _, n in kept) >= max_length - start_end:
            longest = max(n for _, n in kept)
            kept = [(s, n) for s, n in kept if n != longest]
        return Prompt(header + "".join(s for s, _ in kept), end, len(kept))
    k = len(shots)
    while k > 0 and count(header + "".join(shots[:k]) + end) > max_length:
        k -= 1
    return Prompt(header + "".join(shots[:k]), end, k)
