"""`aurora-data`: read, clean and format the Chinese instruction datasets.

Reads alpaca_data_zh_51k, alpaca_gpt4_data_zh, ShareGPT-Chinese-English-90k (and any file in the
same formats), cleans them rule by rule, counts every drop, and writes one conversation schema:

    {"id", "source", "category", "system", "turns": [{"role": "user"|"assistant", "content"}]}

to `train.jsonl` and `validation.jsonl` (a deterministic, hash-based split) plus `manifest.json`
(input hashes, settings, counts) that training and export carry on as provenance. Token ids and
labels are made from this schema by `aurora_core.chat_format`, the single source of the chat
format.

Readers (auto-detected per record, or forced with --format):
  alpaca    JSON array or JSONL of {"instruction", "input", "output", "system"?, "history"?}
  firefly   shareAI/Firefly JSONL {"conversation_id", "category", "conversation": [{"human", "assistant"}]}
  sharegpt  {"conversations": [{"from": "human"|"gpt"|"system", "value"}], "system"?}
  openai    {"messages": [{"role", "content"}]}

One module per job: `readers` (formats), `clean` (the rules, `simhash` for near duplicates),
`prepare` (split and write), `report` (report.md and charts), `cli` (the command).
"""

from .cli import main
from .prepare import prepare
from .report import write_report
from .settings import DataConfig, DataError, Report

__all__ = ["DataConfig", "DataError", "Report", "main", "prepare", "write_report"]
