"""aurora_core: the contract between Aurora's stages, with no torch and no Qt.

Every stage imports this package and no other stage: `aurora_training` (data, QLoRA), `aurora_export`
(merge, GGUF), `aurora_desktop` (chat engine, REPL, window). It owns

- `chat_format`  the chat format (Mixtral-Instruct's reference tokenization) and its sandboxed rendering
- `records`      the conversation schema that aurora-data writes and training reads
- `mixtral`      Mixtral's config reader and its tensor table (Hugging Face name <-> GGUF name, shape, 4-bit)
- `gguf_meta`    GGUF key names and the metadata reader
- `provenance`   what training hands to export and the GGUF carries to the desktop
- `files`        whole-or-nothing writes and file hashes
- `errors`       `AuroraError` and the one `main` wrapper every command uses
- `cli`          option help from config dataclasses' field docs, shared by every command
- `gguf_header`, `model_check`, `llama_runtime`, `scoring`: reading and checking the GGUF that export hands
  to chat and eval, and running it (llama-cpp-python, the `runtime` extra, imported only when a model loads)

Not contract, kept here only because two stages use them and stages never import each other:
`charts` (matplotlib with a CJK font: the data report and the training/eval reports) and `quiet`
(bitsandbytes' start-up note off the terminal: training and export).
"""

__version__ = "0.1.0"  # the version of every Aurora package and command (pyproject reads it)
