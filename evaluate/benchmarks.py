"""The three benchmarks as their authors publish them: on-disk layouts, subject tables, averages.

    C-Eval  dev/{s}_dev.csv, val/{s}_val.csv, test/{s}_test.csv (id,question,A,B,C,D,answer[,explanation]),
            subject_mapping.json {s: [English, 中文, category]}; test has no answers: val is scored
    CMMLU   dev/{s}.csv, test/{s}.csv with a header and an index column (,Question,A,B,C,D,Answer);
            subject names and categories from the official src/categories.py (below)
    MMLU    dev/{s}_dev.csv, val/{s}_val.csv, test/{s}_test.csv with no header (question,A,B,C,D,answer)
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from aurora_core.errors import AuroraError
from aurora_core.files import read_json

LETTERS = ("A", "B", "C", "D")


class EvalDataError(AuroraError):
    """A benchmark file that is not in its official layout; the message names the file and row."""


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    choices: tuple[str, str, str, str]
    answer: str  # A-D


@dataclass(frozen=True)
class Subject:
    key: str  # file name stem
    name: str  # what the official header writes (Chinese for C-Eval and CMMLU, "abstract_algebra" for MMLU)
    category: str
    shots: list[Question]
    questions: list[Question]


# ---------------------------------------------------------------- CMMLU (haonan-li/CMMLU src/categories.py)

CMMLU_NAMES = {
    "agronomy": "农学", "anatomy": "解剖学", "ancient_chinese": "古汉语", "arts": "艺术学", "astronomy": "天文学",
    "business_ethics": "商业伦理", "chinese_civil_service_exam": "中国公务员考试", "chinese_driving_rule": "中国驾驶规则",
    "chinese_food_culture": "中国饮食文化", "chinese_foreign_policy": "中国外交政策", "chinese_history": "中国历史",
    "chinese_literature": "中国文学", "chinese_teacher_qualification": "中国教师资格", "clinical_knowledge": "临床知识",
    "college_actuarial_science": "大学精算学", "college_education": "大学教育学",
    "college_engineering_hydrology": "大学工程水文学", "college_law": "大学法律", "college_mathematics": "大学数学",
    "college_medical_statistics": "大学医学统计", "college_medicine": "大学医学", "computer_security": "计算机安全",
    "conceptual_physics": "概念物理学", "construction_project_management": "建设工程管理", "economics": "经济学",
    "education": "教育学", "electrical_engineering": "电气工程", "elementary_chinese": "小学语文",
    "elementary_commonsense": "小学常识", "elementary_information_and_technology": "小学信息技术",
    "elementary_mathematics": "初等数学", "ethnology": "民族学", "food_science": "食品科学", "genetics": "遗传学",
    "global_facts": "全球事实", "high_school_biology": "高中生物", "high_school_chemistry": "高中化学",
    "computer_science": "计算机科学", "high_school_geography": "高中地理", "high_school_mathematics": "高中数学",
    "high_school_physics": "高中物理学", "high_school_politics": "高中政治", "human_sexuality": "人类性行为",
    "international_law": "国际法学", "journalism": "新闻学", "jurisprudence": "法理学",
    "legal_and_moral_basis": "法律与道德基础", "logical": "逻辑学", "machine_learning": "机器学习", "management": "管理学",
    "marketing": "市场营销", "marxist_theory": "马克思主义理论", "modern_chinese": "现代汉语", "nutrition": "营养学",
    "philosophy": "哲学", "professional_accounting": "专业会计", "professional_law": "专业法学",
    "professional_medicine": "专业医学", "professional_psychology": "专业心理学", "public_relations": "公共关系",
    "security_study": "安全研究", "sociology": "社会学", "sports_science": "体育学",
    "traditional_chinese_medicine": "中医中药", "virology": "病毒学", "world_history": "世界历史",
    "world_religions": "世界宗教",
}
CMMLU_SUBCATEGORIES = {
    "agronomy": ["other"], "anatomy": ["biology"], "ancient_chinese": ["linguistics", "china specific"],
    "arts": ["arts"], "astronomy": ["physics"], "business_ethics": ["business"],
    "chinese_civil_service_exam": ["politics", "china specific"], "chinese_driving_rule": ["other", "china specific"],
    "chinese_food_culture": ["culture", "china specific"], "chinese_foreign_policy": ["politics", "china specific"],
    "chinese_history": ["history", "china specific"], "chinese_literature": ["literature", "china specific"],
    "chinese_teacher_qualification": ["education", "china specific"], "college_actuarial_science": ["math"],
    "college_education": ["education"], "college_engineering_hydrology": ["engineering"], "college_law": ["law"],
    "college_mathematics": ["math"], "college_medical_statistics": ["statistics"], "clinical_knowledge": ["other"],
    "college_medicine": ["other"], "computer_security": ["other"], "conceptual_physics": ["physics"],
    "construction_project_management": ["other", "china specific"], "economics": ["economics"],
    "education": ["education"], "elementary_chinese": ["linguistics", "china specific"],
    "elementary_commonsense": ["other", "china specific"], "elementary_information_and_technology": ["other"],
    "electrical_engineering": ["engineering"], "elementary_mathematics": ["math"],
    "ethnology": ["culture", "china specific"], "food_science": ["other"], "genetics": ["biology"],
    "global_facts": ["global"], "high_school_biology": ["biology"], "high_school_chemistry": ["chemistry"],
    "computer_science": ["computer science"], "high_school_geography": ["geography"],
    "high_school_mathematics": ["math"], "high_school_physics": ["physics"],
    "high_school_politics": ["politics", "china specific"], "human_sexuality": ["other"],
    "international_law": ["law"], "journalism": ["sociology"], "jurisprudence": ["law"],
    "legal_and_moral_basis": ["other"], "logical": ["philosophy"], "machine_learning": ["computer science"],
    "management": ["business"], "marketing": ["business"], "marxist_theory": ["philosophy"],
    "modern_chinese": ["linguistics", "china specific"], "nutrition": ["other"], "philosophy": ["philosophy"],
    "professional_accounting": ["business"], "professional_law": ["law"], "professional_medicine": ["other"],
    "professional_psychology": ["psychology"], "public_relations": ["politics"], "security_study": ["politics"],
    "sociology": ["culture"], "sports_science": ["other"], "traditional_chinese_medicine": ["other", "china specific"],
    "virology": ["biology"], "world_history": ["history"], "world_religions": ["global"],
}
CMMLU_CATEGORIES = {
    "STEM": ["physics", "chemistry", "biology", "computer science", "math", "engineering", "statistics"],
    "Humanities": ["history", "philosophy", "law", "arts", "literature", "global"],
    "Social Science": ["linguistics", "business", "politics", "culture", "economics", "geography", "psychology",
                       "education", "sociology"],
    "Other": ["other"],
    "China specific": ["china specific"],
}

# ---------------------------------------------------------------- MMLU (hendrycks/test categories)

MMLU_CATEGORIES = {
    "STEM": ["abstract_algebra", "anatomy", "astronomy", "college_biology", "college_chemistry",
             "college_computer_science", "college_mathematics", "college_physics", "computer_security",
             "conceptual_physics", "electrical_engineering", "elementary_mathematics", "high_school_biology",
             "high_school_chemistry", "high_school_computer_science", "high_school_mathematics",
             "high_school_physics", "high_school_statistics", "machine_learning"],
    "Humanities": ["formal_logic", "high_school_european_history", "high_school_us_history",
                   "high_school_world_history", "international_law", "jurisprudence", "logical_fallacies",
                   "moral_disputes", "moral_scenarios", "philosophy", "prehistory", "professional_law",
                   "world_religions"],
    "Social Sciences": ["econometrics", "high_school_geography", "high_school_government_and_politics",
                        "high_school_macroeconomics", "high_school_microeconomics", "high_school_psychology",
                        "human_sexuality", "professional_psychology", "public_relations", "security_studies",
                        "sociology", "us_foreign_policy"],
    "Other": ["business_ethics", "clinical_knowledge", "college_medicine", "global_facts", "human_aging",
              "management", "marketing", "medical_genetics", "miscellaneous", "nutrition", "professional_accounting",
              "professional_medicine", "virology"],
}
MMLU_CATEGORY = {s: c for c, subjects in MMLU_CATEGORIES.items() for s in subjects}


def cmmlu_categories(subject: str) -> list[str]:
    """CMMLU's categories of a subject (a subject can be in two: 'China specific' and its field)."""
    subs = CMMLU_SUBCATEGORIES.get(subject, ["other"])
    return [c for c, members in CMMLU_CATEGORIES.items() if any(s in members for s in subs)]


# ---------------------------------------------------------------- reading the CSVs


def _read_csv(path: Path) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return [row for row in csv.reader(f) if row]
    except UnicodeDecodeError:
        raise EvalDataError(f"{path}: not UTF-8 text; re-download the benchmark") from None
    except csv.Error as exc:
        raise EvalDataError(f"{path}: not a CSV file ({exc})") from None
    except IsADirectoryError:
        raise EvalDataError(f"{path}: is a folder, not a CSV file; restore the benchmark's files") from None
    except OSError as exc:
        raise EvalDataError(f"{path}: cannot read it ({exc.strerror})") from None


def _question(path: Path, row_no: int, qid: str, cells: list[str], answer: str | None) -> Question:
    if answer is None:
        raise EvalDataError(f"{path}: row {row_no} has no answer column; this split cannot be scored")
    answer = answer.strip()
    if answer not in LETTERS:
        raise EvalDataError(f"{path}: row {row_no}: answer {answer!r} is not one of A, B, C, D")
    return Question(qid, cells[0], tuple(cells[1:5]), answer)


def read_ceval(path: Path) -> list[Question]:
    rows = _read_csv(path)
    if not rows or [c.strip().lower() for c in rows[0][:6]] != ["id", "question", "a", "b", "c", "d"]:
        raise EvalDataError(f"{path}: row 1 is not C-Eval's header (id,question,A,B,C,D,answer); is this "
                            "another benchmark's file?")
    header = [c.strip().lower() for c in rows[0]]
    if "answer" not in header:
        raise EvalDataError(f"{path}: has no 'answer' column: C-Eval's test split has no public answers (its "
                            "scores come from the C-Eval submission site); evaluate --split val")
    a = header.index("answer")
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) <= a:
            raise EvalDataError(f"{path}: row {n} has {len(row)} columns, C-Eval needs {a + 1}")
        out.append(_question(path, n, row[0], row[1:6], row[a]))
    return out


def read_cmmlu(path: Path) -> list[Question]:
    rows = _read_csv(path)
    if not rows or [c.strip() for c in rows[0][1:7]] != ["Question", "A", "B", "C", "D", "Answer"]:
        raise EvalDataError(f"{path}: row 1 is not CMMLU's header (,Question,A,B,C,D,Answer); is this "
                            "another benchmark's file?")
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) < 7:
            raise EvalDataError(f"{path}: row {n} has {len(row)} columns, CMMLU needs 7")
        out.append(_question(path, n, row[0], row[1:6], row[6]))
    return out


def read_mmlu(path: Path) -> list[Question]:
    rows = _read_csv(path)
    if rows and [c.strip().lower() for c in rows[0][:5]] in (["question", "a", "b", "c", "d"],
                                                             ["", "question", "a", "b", "c"]):
        raise EvalDataError(f"{path}: row 1 is a header, but MMLU's CSVs have none (the first row is a question)")
    out = []
    for n, row in enumerate(rows, start=1):
        if len(row) < 6:
            raise EvalDataError(f"{path}: row {n} has {len(row)} columns, MMLU needs 6 (question,A,B,C,D,answer)")
        out.append(_question(path, n, str(n - 1), row[:5], row[5]))
    return out


@dataclass(frozen=True)
class Benchmark:
    key: str
    label: str
    split: str  # the split that is scored
    average: str  # "subjects" (macro) or "questions" (micro): the benchmark's own overall average


BENCHMARKS = {
    "ceval": Benchmark("ceval", "C-Eval val", "val", "subjects"),
    "cmmlu": Benchmark("cmmlu", "CMMLU", "test", "subjects"),
    "mmlu": Benchmark("mmlu", "MMLU", "test", "questions"),
}


def load(benchmark: str, folder: Path, split: str | None = None, subjects: list[str] | None = None,
         limit: int | None = None, shots: int = 5) -> list[Subject]:
    """Every subject of a benchmark folder: its first `shots` dev questions and the questions to score."""
    folder = Path(folder)
    spec = BENCHMARKS[benchmark]
    split = split or spec.split
    if benchmark == "ceval" and split == "test":
        raise EvalDataError(f"{folder}: C-Eval's test split has no public answers (scores come from the C-Eval "
                            "submission site); evaluate the val split")
    if not (folder / "dev").is_dir() or not (folder / split).is_dir():
        raise EvalDataError(f"{folder}: needs dev/ and {split}/ folders as the official {spec.label} release has")
    if benchmark == "ceval":
        mapping_file = folder / "subject_mapping.json"
        mapping = read_json(mapping_file, "it comes with the C-Eval release; restore it from there", EvalDataError)
        if not isinstance(mapping, dict):
            raise EvalDataError(f"{mapping_file}: expected an object of subject -> [English, 中文, category]; "
                                "restore it from the C-Eval release")
        keys = sorted(p.name[: -len(f"_{split}.csv")] for p in (folder / split).glob(f"*_{split}.csv"))
    elif benchmark == "cmmlu":
        keys = sorted(p.stem for p in (folder / split).glob("*.csv"))
    else:
        keys = sorted(p.name[: -len(f"_{split}.csv")] for p in (folder / split).glob(f"*_{split}.csv"))
    if subjects:
        unknown = sorted(set(subjects) - set(keys))
        if unknown:
            raise EvalDataError(f"{folder}: no subject {unknown[0]!r} in {split}/; choose from {', '.join(keys[:8])}…")
        keys = [k for k in keys if k in subjects]
    if not keys:
        raise EvalDataError(f"{folder / split}: holds no {spec.label} subject files")
    out = []
    for key in keys:
        if benchmark == "ceval":
            dev_file, test_file = folder / "dev" / f"{key}_dev.csv", folder / split / f"{key}_{split}.csv"
            reader = read_ceval
            entry = mapping.get(key)
            if not (isinstance(entry, list) and len(entry) >= 3):
                raise EvalDataError(f"{mapping_file}: no [English, 中文, category] entry for {key!r}")
            name, category = entry[1], entry[2]
        elif benchmark == "cmmlu":
            dev_file, test_file, reader = folder / "dev" / f"{key}.csv", folder / split / f"{key}.csv", read_cmmlu
            if key not in CMMLU_NAMES:
                raise EvalDataError(f"{test_file}: {key!r} is not one of CMMLU's 67 subjects")
            name, category = CMMLU_NAMES[key], ",".join(cmmlu_categories(key))
        else:
            dev_file, test_file, reader = folder / "dev" / f"{key}_dev.csv", folder / split / f"{key}_{split}.csv", read_mmlu
            name, category = key, MMLU_CATEGORY.get(key, "Other")
        if not dev_file.is_file():
            raise EvalDataError(f"{dev_file}: missing; the few-shot examples come from the dev split")
        questions = reader(test_file)
        if not questions:
            raise EvalDataError(f"{test_file}: holds no questions")
        out.append(Subject(key, name, category, reader(dev_file)[:shots], questions[:limit] if limit else questions))
    return out
