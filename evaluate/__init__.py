"""aurora_eval: C-Eval, CMMLU and MMLU 5-shot by each benchmark's own protocol, on a GGUF or a Hugging Face model.

`benchmarks` (the three layouts, their subject tables, loaders), `prompts` (the official scripts' prompt
strings and shot dropping), `backends` (llama.cpp with the few-shot prefix kept in the KV cache, and
transformers), `run` (the loop, resume), `report` (results.json, results.md, chart), `cli` (`aurora-eval`).
"""
