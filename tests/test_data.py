"""aurora-data on fixture files written in each real format."""

from __future__ import annotations

import json
import subprocess
import sysconfig
from pathlib import Path

import pytest

from aurora_training.data import DataConfig, DataError, prepare, write_report
from aurora_training.data.prepare import split_of

AURORA_DATA = str(Path(sysconfig.get_path("scripts")) / "aurora-data")


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def datasets(tmp_path):
    alpaca = write_json(tmp_path / "alpaca_data_zh_51k.json", [
        {"instruction": "把下面的句子翻译成英文。", "input": "我爱我的祖国。", "output": "I love my country. 我爱我的祖国。"},
        {"instruction": "写一首关于春天的短诗。", "input": "", "output": "春风吹绿柳，\r\n燕子归来早。"},
        {"instruction": "继续", "input": "", "output": "好的，我们继续讨论第三点。", "system": "你是历史老师。",
         "history": [["秦朝是哪一年建立的？", "公元前221年。"], ["谁建立的？", "秦始皇嬴政。"]]},
        {"instruction": "你是谁？", "input": "", "output": "作为一个AI语言模型，我没有名字。"},
        {"instruction": "空回答", "input": "", "output": "   "},
    ])
    firefly = write_jsonl(tmp_path / "sharegpt_zh_en_90k.jsonl", [
        {"conversation_id": 1, "category": "Brainstorming", "conversation": [
            {"human": "给我三个周末活动的建议。", "assistant": "1. 爬山\n2. 看电影\n3. 做饭"},
            {"human": "第二个具体一点？", "assistant": "可以去看一部最新上映的科幻电影。"}]},
        {"conversation_id": 2, "category": "Coding", "conversation": [
            {"human": "Write a Python hello world.", "assistant": "print('hello world')"}]},
        {"conversation_id": 3, "category": "Translation", "conversation": [
            {"human": "把下面的句子翻译成英文。\n我爱我的祖国。", "assistant": "I love my country. 我爱我的祖国。"}]},
    ])
    sharegpt = write_jsonl(tmp_path / "sharegpt.jsonl", [
        {"conversations": [{"from": "system", "value": "请用中文回答。"}, {"from": "human", "value": "什么是量化？"},
                           {"from": "gpt", "value": "量化是把权重用更少的位数表示。"}]},
        {"conversations": [{"from": "gpt", "value": "我先说。"}, {"from": "human", "value": "好的。"}]},
    ])
    openai = write_jsonl(tmp_path / "openai.jsonl", [
        {"messages": [{"role": "user", "content": "你好\x07！"}, {"role": "assistant", "content": "你好！有什么可以帮你？"},
                      {"role": "user", "content": "没事了"}]},
    ])
    return [alpaca, firefly, sharegpt, openai]


def read_out(folder: Path) -> list[dict]:
    rows = []
    for split in ("train", "validation"):
        rows += [json.loads(x) for x in (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
    return sorted(rows, key=lambda r: r["id"])


def test_reads_every_format_and_counts_every_rule(datasets, tmp_path):
    out = tmp_path / "out"
    report = prepare(datasets, out, DataConfig(), progress=False)
    rows = {r["id"]: r for r in read_out(out)}
    assert set(rows) == {"alpaca_data_zh_51k:2", "alpaca_data_zh_51k:7", "alpaca_data_zh_51k:12",
                         "sharegpt_zh_en_90k:1", "sharegpt:1", "openai:1"}
    history = rows["alpaca_data_zh_51k:12"]
    assert history["system"] == "你是历史老师。" and len(history["turns"]) == 6
    assert history["turns"][0] == {"role": "user", "content": "秦朝是哪一年建立的？"}
    assert rows["alpaca_data_zh_51k:2"]["turns"][0]["content"] == "把下面的句子翻译成英文。\n我爱我的祖国。"
    assert rows["alpaca_data_zh_51k:7"]["turns"][1]["content"] == "春风吹绿柳，\n燕子归来早。"  # \r\n normalised
    assert rows["sharegpt_zh_en_90k:1"]["category"] == "Brainstorming"
    assert rows["sharegpt:1"]["system"] == "请用中文回答。"
    assert rows["openai:1"]["turns"] == [{"role": "user", "content": "你好！"},
                                         {"role": "assistant", "content": "你好！有什么可以帮你？"}]
    assert report.dropped == {"boilerplate": 1, "empty_turn": 1, "not_chinese": 1, "duplicate": 1, "broken_order": 1}
    assert report.modified["trailing_user_turn_removed"] == 2  # openai:1 and the broken sharegpt:2
    assert report.kept_multi["alpaca_data_zh_51k.json"] == 1 and report.kept_single["alpaca_data_zh_51k.json"] == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert [i["file"] for i in manifest["inputs"]] == [p.name for p in datasets]
    assert len(manifest["inputs"][0]["sha256"]) == 64


def test_keep_english_keeps_the_english_conversation(datasets, tmp_path):
    report = prepare(datasets, tmp_path / "out", DataConfig(keep_english=True), progress=False)
    assert "not_chinese" not in report.dropped
    assert any(r["id"] == "sharegpt_zh_en_90k:2" for r in read_out(tmp_path / "out"))


def test_token_limit_drops_or_cuts_at_a_turn_boundary(datasets, tmp_path, tiny_base):
    # The 3-pair history conversation is 106 template tokens; two pairs are 78, the first alone 44.
    cfg = DataConfig(tokenizer=str(tiny_base), max_tokens=90)
    dropped = prepare(datasets, tmp_path / "drop", cfg, progress=False)
    assert dropped.dropped["too_long"] >= 1 and dropped.length_unit == "tokens"
    assert all(n <= 90 for n in dropped.lengths)
    assert "alpaca_data_zh_51k:12" not in {r["id"] for r in read_out(tmp_path / "drop")}
    cut = prepare(datasets, tmp_path / "cut", DataConfig(tokenizer=str(tiny_base), max_tokens=90, overlong="cut"),
                  progress=False)
    assert cut.modified["cut_at_turn_boundary"] >= 1
    history = {r["id"]: r for r in read_out(tmp_path / "cut")}["alpaca_data_zh_51k:12"]
    assert len(history["turns"]) == 4 and history["turns"][-1] == {"role": "assistant", "content": "秦始皇嬴政。"}


def test_malformed_line_names_file_line_and_column(tmp_path, datasets):
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "好"}]}\n'
                   '{"messages": [oops]}\n', encoding="utf-8")
    with pytest.raises(DataError) as err:
        prepare([bad], tmp_path / "out", DataConfig(), progress=False)
    assert str(err.value).startswith(f"{bad}:2:15: invalid JSON: Expecting value")
    assert "--skip-invalid" in str(err.value)
    assert not (tmp_path / "out" / "train.jsonl").exists()
    report = prepare([bad], tmp_path / "out", DataConfig(skip_invalid=True), progress=False)
    assert report.dropped["invalid_json"] == 1 and report.split["train"] + report.split["validation"] == 1


def test_truncated_json_array_is_reported(tmp_path):
    bad = tmp_path / "alpaca.json"
    bad.write_text('[{"instruction": "你好", "input": "", "output": "你好！"},\n {"instruction": "再', encoding="utf-8")
    with pytest.raises(DataError, match=r"alpaca.json:2:\d+: invalid JSON"):
        prepare([bad], tmp_path / "out", DataConfig(), progress=False)


def test_unknown_schema_lists_the_expected_keys(tmp_path):
    bad = write_jsonl(tmp_path / "odd.jsonl", [{"question": "你好", "answer": "好"}])
    with pytest.raises(DataError) as err:
        prepare([bad], tmp_path / "out", DataConfig(), progress=False)
    message = str(err.value)
    assert message.startswith(f"{bad}:1: unknown record schema with keys ['answer', 'question']")
    assert "alpaca (instruction, input, output)" in message and "openai (messages" in message


def test_existing_output_is_kept_without_force(datasets, tmp_path):
    out = tmp_path / "out"
    prepare(datasets, out, DataConfig(), progress=False)
    before = (out / "train.jsonl").read_bytes()
    with pytest.raises(DataError, match="--force"):
        prepare(datasets[:1], out, DataConfig(), progress=False)
    assert (out / "train.jsonl").read_bytes() == before
    prepare(datasets[:1], out, DataConfig(), force=True, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "train.jsonl", "validation.jsonl"]


def test_split_is_stable_and_follows_the_ratio(datasets, tmp_path):
    a = prepare(datasets, tmp_path / "a", DataConfig(val_ratio=0.5), progress=False)
    prepare(list(reversed(datasets)), tmp_path / "b", DataConfig(val_ratio=0.5), progress=False)
    ids = lambda folder, split: sorted(  # noqa: E731
        json.loads(x)["id"] for x in (folder / f"{split}.jsonl").read_text().splitlines())
    assert ids(tmp_path / "a", "validation") == ids(tmp_path / "b", "validation")
    assert a.split["validation"] >= 1 and a.split["train"] >= 1


def test_near_duplicates_are_optional(tmp_path):
    base = ("量化是把模型的权重用更少的位数来表示，从而减少内存占用。混合专家模型把前馈网络分成多个专家，每个词元只由"
            "其中两个专家处理。在本地电脑上运行模型的好处是不需要联网，数据不会离开你的电脑。低秩适配只训练很少的额外参数，"
            "把一个大矩阵的更新分解成两个小矩阵的乘积。评测的时候，我们使用五个示例，让模型从四个选项中选出正确答案。")
    rows = [{"messages": [{"role": "user", "content": "什么是量化？"}, {"role": "assistant", "content": base}]},
            {"messages": [{"role": "user", "content": "什么是量化?"}, {"role": "assistant", "content": base + "。"}]}]
    f = write_jsonl(tmp_path / "near.jsonl", rows)
    assert prepare([f], tmp_path / "a", DataConfig(), progress=False).dropped["near_duplicate"] == 0
    assert prepare([f], tmp_path / "b", DataConfig(near_dup=True), progress=False).dropped["near_duplicate"] == 1


def test_report_has_table_one_layout_and_charts(datasets, tmp_path):
    report = prepare(datasets, tmp_path / "out", DataConfig(), progress=False)
    path = write_report(report, tmp_path / "report")
    text = path.read_text(encoding="utf-8")
    assert "| source | single-turn | multi-turn | total | read |" in text
    assert "| alpaca_data_zh_51k.json | 2 | 1 | 3 | 5 |" in text
    assert "| boilerplate | 1 |" in text and "| duplicate | 1 |" in text
    for png in ("categories.png", "lengths.png"):
        assert (tmp_path / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_line_run_and_one_line_errors(datasets, tmp_path):
    ok = subprocess.run([AURORA_DATA, *map(str, datasets), "--out", str(tmp_path / "out"), "--no-progress",
                         "--report", str(tmp_path / "report")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("kept 6 of 11 conversations")
    missing = subprocess.run([AURORA_DATA, str(tmp_path / "nope.json"), "--out", str(tmp_path / "x")],
                             capture_output=True, text=True)
    assert missing.returncode == 2
    assert missing.stderr == f"aurora-data: error: {tmp_path / 'nope.json'}: no such file; pass the downloaded dataset files\n"


def test_split_of_depends_on_text_only():
    from aurora_core.chat_format import Turn
    from aurora_core.records import ConversationRecord

    a = ConversationRecord("x:1", "a.json", None, None, [Turn("user", "你好"), Turn("assistant", "好")])
    b = ConversationRecord("y:9", "b.json", "cat", None, a.turns)
    assert split_of(a, 0.3) == split_of(b, 0.3)


def test_chart_with_chinese_categories_has_every_glyph(tmp_path):
    """The CJK font that set-up installs is picked: no "Glyph missing" warning for Chinese labels."""
    import warnings
    from collections import Counter

    from aurora_core.charts import cjk_font
    from aurora_training.data.report import _charts
    from aurora_training.data.settings import Report

    assert cjk_font(), "no CJK font installed: sudo apt-get install fonts-noto-cjk"
    report = Report(categories=Counter({"医学": 5, "法律咨询": 3, "古诗词": 2, "代码": 1}), lengths=[10, 20, 30])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _charts(report, tmp_path)
    assert [str(w.message) for w in caught if "missing from font" in str(w.message) or "Glyph" in str(w.message)] == []
    assert (tmp_path / "categories.png").read_bytes()[:4] == b"\x89PNG"


def test_outputs_follow_the_umask(tmp_path):
    """Written through temporary files, outputs still get the user's usual permissions (not 0600)."""
    import os
    import stat

    from aurora_core.files import new_folder, write_text

    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"instruction": "你好吗？", "input": "", "output": "我很好，谢谢。"}, ensure_ascii=False) + "\n")
    old = os.umask(0o022)
    try:
        prepare([src], tmp_path / "out", DataConfig(val_ratio=0), progress=False)
        write_text(tmp_path / "t.txt", "x")
        with new_folder(tmp_path / "folder") as tmp:
            (tmp / "f").write_text("y")
    finally:
        os.umask(old)
    for f in ("out/train.jsonl", "out/validation.jsonl", "out/manifest.json", "t.txt", "folder/f"):
        assert stat.S_IMODE((tmp_path / f).stat().st_mode) == 0o644, f
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755
