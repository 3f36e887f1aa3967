"""Tiny question sets in each benchmark's official layout, written by the project (the demo and the tests use
them; the real benchmarks are downloaded by the user). Everyday knowledge, so a real model scores well."""

from __future__ import annotations

import csv
import json
from pathlib import Path

QUESTIONS = {
    "general": [
        ("一年有几个季节？", "两个", "三个", "四个", "五个", "C"),
        ("中国的首都是哪座城市？", "上海", "北京", "广州", "深圳", "B"),
        ("水在标准大气压下多少摄氏度结冰？", "0", "10", "50", "100", "A"),
        ("熊猫最喜欢吃什么？", "竹子", "鱼", "苹果", "米饭", "A"),
        ("地球绕太阳一周大约需要多久？", "一天", "一个月", "一年", "十年", "C"),
        ("端午节通常吃什么？", "月饼", "饺子", "汤圆", "粽子", "D"),
        ("长城主要位于哪个国家？", "日本", "中国", "印度", "蒙古", "B"),
        ("一周有几天？", "五天", "六天", "七天", "八天", "C"),
    ],
    "math": [
        ("1 + 1 等于多少？", "1", "2", "3", "4", "B"),
        ("3 × 4 等于多少？", "7", "12", "14", "34", "B"),
        ("10 ÷ 2 等于多少？", "2", "5", "8", "20", "B"),
        ("最小的质数是？", "0", "1", "2", "3", "C"),
        ("100 的平方根是？", "10", "20", "50", "100", "A"),
        ("三角形内角和是多少度？", "90", "180", "270", "360", "B"),
        ("2 的 3 次方是？", "5", "6", "8", "9", "C"),
        ("9 - 4 等于多少？", "3", "4", "5", "6", "C"),
    ],
}
NAMES = {"general": ("general knowledge", "常识", "Other"), "math": ("elementary mathematics", "初等数学", "STEM")}
CMMLU_KEYS = {"general": "elementary_commonsense", "math": "elementary_mathematics"}
MMLU_KEYS = {"general": "global_facts", "math": "elementary_mathematics"}


def _write(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)


def write_demo_sets(root: Path) -> dict[str, Path]:
    """root/ceval, root/cmmlu, root/mmlu in the official layouts: 5 dev shots and 3 questions per subject."""
    root = Path(root)
    for subject, qs in QUESTIONS.items():
        dev, test = qs[:5], qs[5:]
        key = f"demo_{subject}"
        _write(root / "ceval" / "dev" / f"{key}_dev.csv",
               [["id", "question", "A", "B", "C", "D", "answer", "explanation"]] + [[str(i), *q, ""] for i, q in enumerate(dev)])
        _write(root / "ceval" / "val" / f"{key}_val.csv",
               [["id", "question", "A", "B", "C", "D", "answer"]] + [[str(i), *q] for i, q in enumerate(test)])
        c = CMMLU_KEYS[subject]
        _write(root / "cmmlu" / "dev" / f"{c}.csv", [["", "Question", "A", "B", "C", "D", "Answer"]] + [[str(i), *q] for i, q in enumerate(dev)])
        _write(root / "cmmlu" / "test" / f"{c}.csv", [["", "Question", "A", "B", "C", "D", "Answer"]] + [[str(i), *q] for i, q in enumerate(test)])
        m = MMLU_KEYS[subject]
        _write(root / "mmlu" / "dev" / f"{m}_dev.csv", [list(q) for q in dev])
        _write(root / "mmlu" / "test" / f"{m}_test.csv", [list(q) for q in test])
    mapping = {f"demo_{s}": list(NAMES[s]) for s in QUESTIONS}
    (root / "ceval" / "subject_mapping.json").write_text(json.dumps(mapping, ensure_ascii=False, indent=2))
    return {"ceval": root / "ceval", "cmmlu": root / "cmmlu", "mmlu": root / "mmlu"}
