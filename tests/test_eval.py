"""aurora-eval: official layouts and prompts (golden against the official scripts' own code), both backends,
shot dropping, resume, bad input."""

from __future__ import annotations

import json
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aurora_eval import prompts
from aurora_eval.benchmarks import EvalDataError, load
from aurora_eval.demo_sets import write_demo_sets

BIN = Path(sysconfig.get_path("scripts"))


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    return write_demo_sets(tmp_path_factory.mktemp("bench"))


def count_chars(text: str) -> int:
    return len(text)


# ---------------------------------------------------------------- the official scripts' own code (reference)
# hendrycks/test evaluate.py, verbatim but for the names (the "mmlu_" prefix)
mmlu_choices = ["A", "B", "C", "D"]


def mmlu_format_subject(subject):
    l = subject.split("_")  # noqa: E741
    s = ""
    for entry in l:
        s += " " + entry
    return s


def mmlu_format_example(df, idx, include_answer=True):
    prompt = df.iloc[idx, 0]
    k = df.shape[1] - 2
    for j in range(k):
        prompt += "\n{}. {}".format(mmlu_choices[j], df.iloc[idx, j + 1])
    prompt += "\nAnswer:"
    if include_answer:
        prompt += " {}\n\n".format(df.iloc[idx, k + 1])
    return prompt


def mmlu_gen_prompt(train_df, subject, k=-1):
    prompt = "The following are multiple choice questions (with answers) about {}.\n\n".format(mmlu_format_subject(subject))
    if k == -1:
        k = train_df.shape[0]
    for i in range(k):
        prompt += mmlu_format_example(train_df, i)
    return prompt


# hkust-nlp/ceval code/evaluator_series/evaluators/llama.py (LLaMA_Evaluator methods, as functions)
def ceval_format_example(line, include_answer=True):
    example = line['question']
    for choice in ["A", "B", "C", "D"]:
        example += f'\n{choice}. {line[f"{choice}"]}'
    if include_answer:
        example += '\n答案：' + line["answer"] + '\n\n'
    else:
        example += '\n答案：'
    return example


def ceval_generate_few_shot_prompt(subject, dev_df, k):
    prompt = f"以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。\n\n"
    for i in range(k):
        prompt += ceval_format_example(dev_df.iloc[i, :], include_answer=True)
    return prompt


# haonan-li/CMMLU src/mp_utils.py (no tokenizer: no length limit)
def cmmlu_format_example(df, idx, subject, include_answer=True):
    prompt = "题目：" + df.iloc[idx, 0]
    k = df.shape[1] - 2
    for j in range(k):
        prompt += "\n{}. {}".format(["A", "B", "C", "D"][j], df.iloc[idx, j + 1])
    prompt += "\n答案是："
    if include_answer:
        prompt += "{}\n\n".format(df.iloc[idx, k + 1])
    return prompt


def cmmlu_gen_prompt(dev_df, name_zh, prompt_end, num_few_shot):
    prompt = "以下是关于{}的单项选择题，请直接给出正确答案的选项。\n\n".format(name_zh)
    for i in range(num_few_shot):
        prompt += cmmlu_format_example(dev_df, i, None)
    return prompt + prompt_end


# ---------------------------------------------------------------- golden prompts


def test_mmlu_prompt_equals_hendrycks(sets):
    [subject] = load("mmlu", sets["mmlu"], subjects=["elementary_mathematics"])
    dev = pd.read_csv(sets["mmlu"] / "dev" / "elementary_mathematics_dev.csv", header=None)[:5]
    test = pd.read_csv(sets["mmlu"] / "test" / "elementary_mathematics_test.csv", header=None)
    for i, q in enumerate(subject.questions):
        official = mmlu_gen_prompt(dev, "elementary_mathematics", 5) + mmlu_format_example(test, i, include_answer=False)
        assert prompts.build("mmlu", subject, q, count_chars, 10**6).text == official
    assert "about  elementary mathematics." in official  # format_subject's double space, kept


def test_ceval_prompt_equals_the_official_llama_evaluator(sets):
    [subject] = load("ceval", sets["ceval"], subjects=["demo_general"])
    dev = pd.read_csv(sets["ceval"] / "dev" / "demo_general_dev.csv")
    val = pd.read_csv(sets["ceval"] / "val" / "demo_general_val.csv")
    for i, q in enumerate(subject.questions):
        official = ceval_generate_few_shot_prompt("常识", dev, 5) + ceval_format_example(val.iloc[i, :], False)
        assert prompts.build("ceval", subject, q, count_chars, 10**6).text == official


def test_cmmlu_prompt_equals_mp_utils(sets):
    [subject] = load("cmmlu", sets["cmmlu"], subjects=["elementary_commonsense"])
    dev = pd.read_csv(sets["cmmlu"] / "dev" / "elementary_commonsense.csv", header=0, index_col=0)
    test = pd.read_csv(sets["cmmlu"] / "test" / "elementary_commonsense.csv", header=0, index_col=0)
    for i, q in enumerate(subject.questions):
        end = cmmlu_format_example(test, i, None, include_answer=False)
        official = cmmlu_gen_prompt(dev, "小学常识", end, 5)
        assert prompts.build("cmmlu", subject, q, count_chars, 10**6).text == official


def test_long_prompts_drop_shots_by_each_rule(sets):
    [mmlu] = load("mmlu", sets["mmlu"], subjects=["global_facts"])
    q = mmlu.questions[0]
    full = prompts.build("mmlu", mmlu, q, count_chars, 10**6)
    cut = prompts.build("mmlu", mmlu, q, count_chars, len(full.text) - 1)
    assert cut.shots == 4 and full.text.startswith(cut.prefix)  # from the end
    [cmmlu] = load("cmmlu", sets["cmmlu"], subjects=["elementary_commonsense"])
    shots = [prompts.cmmlu_example(s) for s in cmmlu.shots]
    q = cmmlu.questions[0]
    header, end = prompts.cmmlu_header(cmmlu), prompts.cmmlu_example(q, False)
    budget = len(header) + len(end) + sum(map(len, shots))  # all shots just too long: the longest goes first
    cut = prompts.build("cmmlu", cmmlu, q, count_chars, budget)
    longest = max(shots, key=len)
    assert cut.shots < 5 and longest not in cut.prefix
    assert prompts.build("cmmlu", cmmlu, q, count_chars, 5).text == end  # not even the header fits


# ---------------------------------------------------------------- bad input


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("case,needle", [
    ("mmlu_header", r"row 1 is a header, but MMLU's CSVs have none"),
    ("mmlu_columns", r"x_test.csv: row 2 has 5 columns, MMLU needs 6"),
    ("mmlu_answer", r"x_test.csv: row 1: answer 'E' is not one of A, B, C, D"),
    ("cmmlu_no_header", r"anatomy.csv: row 1 is not CMMLU's header"),
    ("ceval_test", r"C-Eval's test split has no public answers"),
    ("empty", r"holds no questions"),
])
def test_bad_benchmark_files(tmp_path, case, needle):
    row = "q,a,b,c,d,A\n"
    if case.startswith("mmlu") or case == "empty":
        write(tmp_path / "dev" / "x_dev.csv", row * 5)
        body = {"mmlu_header": "question,A,B,C,D,answer\n" + row, "mmlu_columns": row + "q,a,b,c,d\n",
                "mmlu_answer": "q,a,b,c,d,E\n", "empty": ""}[case]
        write(tmp_path / "test" / "x_test.csv", body)
        benchmark = "mmlu"
    elif case == "cmmlu_no_header":
        write(tmp_path / "dev" / "anatomy.csv", ",Question,A,B,C,D,Answer\n" + ("0," + row) * 5)
        write(tmp_path / "test" / "anatomy.csv", "0," + row)
        benchmark = "cmmlu"
    else:
        write(tmp_path / "subject_mapping.json", json.dumps({"x": ["x", "叉", "STEM"]}))
        write(tmp_path / "dev" / "x_dev.csv", "id,question,A,B,C,D,answer\n" + ("0," + row) * 5)
        write(tmp_path / "test" / "x_test.csv", "id,question,A,B,C,D\n0,q,a,b,c,d\n")
        with pytest.raises(EvalDataError, match=needle):
            load("ceval", tmp_path, split="test")
        return
    with pytest.raises(EvalDataError, match=needle):
        load(benchmark, tmp_path, subjects=None) if case != "cmmlu_no_header" else load("cmmlu", tmp_path)


def test_unknown_cmmlu_subject_and_missing_answer_column(tmp_path):
    write(tmp_path / "dev" / "nope.csv", ",Question,A,B,C,D,Answer\n0,q,a,b,c,d,A\n")
    write(tmp_path / "test" / "nope.csv", ",Question,A,B,C,D,Answer\n0,q,a,b,c,d,A\n")
    with pytest.raises(EvalDataError, match="'nope' is not one of CMMLU's 67 subjects"):
        load("cmmlu", tmp_path)
    (tmp_path / "c").mkdir()
    write(tmp_path / "c" / "subject_mapping.json", json.dumps({"x": ["x", "叉", "STEM"]}))
    write(tmp_path / "c" / "dev" / "x_dev.csv", "id,question,A,B,C,D,answer\n0,q,a,b,c,d,A\n")
    write(tmp_path / "c" / "val" / "x_val.csv", "id,question,A,B,C,D\n0,q,a,b,c,d\n")
    with pytest.raises(EvalDataError, match="x_val.csv: has no 'answer' column"):
        load("ceval", tmp_path / "c")


# ---------------------------------------------------------------- backends, resume, command


@pytest.fixture(scope="module")
def demo_gguf(exported):
    return exported["f32"]


def test_gguf_and_hf_backends_agree(sets, demo_gguf, export_kit, export_adapter, tmp_path):
    """The F32 GGUF (merged) and transformers (base + PEFT adapter): same letter, probabilities within 1e-3."""
    from aurora_eval.backends import GGUFBackend, HFBackend
    from aurora_eval.run import EvalSettings, evaluate, read_done

    data = dict(sets)
    settings = EvalSettings(model="x", shots=5, max_length=2048)
    gguf = GGUFBackend(demo_gguf, 2048)
    try:
        evaluate(gguf, data, tmp_path / "gguf", settings, progress=False)
    finally:
        gguf.close()
    hf = HFBackend(export_kit, export_adapter)
    evaluate(hf, data, tmp_path / "hf", settings, progress=False)
    a, b = read_done(tmp_path / "gguf" / "predictions.jsonl"), read_done(tmp_path / "hf" / "predictions.jsonl")
    assert a.keys() == b.keys() and len(a) == 18
    for key in a:
        assert a[key]["pred"] == b[key]["pred"], key
        pa, pb = np.array(list(a[key]["probs"].values())), np.array(list(b[key]["probs"].values()))
        assert np.abs(pa - pb).max() < 1e-3, key


def test_prefix_reuse_and_resume(sets, demo_gguf, tmp_path):
    from aurora_eval.backends import GGUFBackend
    from aurora_eval.run import EvalSettings, evaluate, read_done

    settings = EvalSettings(model="x")
    backend = GGUFBackend(demo_gguf, 2048)
    try:
        first = evaluate(backend, {"cmmlu": sets["cmmlu"]}, tmp_path, settings, limit=1, progress=False)
        assert first["benchmarks"]["cmmlu"]["questions"] == 2
        evaluated = backend.evaluated
        pred = tmp_path / "predictions.jsonl"
        with open(pred, "a") as f:
            f.write('{"benchmark": "cmmlu", "subj')  # a kill in the middle of a line
        evaluate(backend, {"cmmlu": sets["cmmlu"]}, tmp_path, settings, progress=False)
        rows = read_done(pred)
        assert len(rows) == 6 and len(pred.read_text().splitlines()) == 6  # 2 + 4 new; the cut line is gone
        # each subject's few-shot prefix was evaluated once; every further question only its own tokens
        count = lambda t: len(backend.tokenize(t))  # noqa: E731
        full = once = 0
        for s in load("cmmlu", sets["cmmlu"]):
            built = [prompts.build("cmmlu", s, q, count, 2048) for q in s.questions[1:]]
            prefix = count(built[0].prefix)
            full += sum(count(b.text) for b in built)
            once += prefix + sum(count(b.text) - prefix for b in built)
        assert backend.evaluated - evaluated <= once + 4 < full
    finally:
        backend.close()


def test_command_writes_results_and_refuses_bad_input(sets, demo_gguf, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([str(BIN / "aurora-eval"), str(demo_gguf), "--ceval", str(sets["ceval"]), "--cmmlu",
                             str(sets["cmmlu"]), "--mmlu", str(sets["mmlu"]), "--out", str(out), "--no-progress"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "| C-Eval val" in result.stdout and "| CMMLU" in result.stdout and "| MMLU" in result.stdout
    data = json.loads((out / "results.json").read_text())
    assert set(data["benchmarks"]) == {"ceval", "cmmlu", "mmlu"}
    assert data["benchmarks"]["mmlu"]["average"] == "questions" and data["benchmarks"]["cmmlu"]["average"] == "subjects"
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG" and (out / "results.md").is_file()
    bad = subprocess.run([str(BIN / "aurora-eval"), str(demo_gguf), "--mmlu", str(sets["cmmlu"]), "--out",
                          str(tmp_path / "o2")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "MMLU" in bad.stderr
