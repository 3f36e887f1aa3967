"""Aurora Desktop: offline Chinese chat with a GGUF model through llama.cpp.

This package never imports torch, transformers, aurora_training or aurora_export: the GGUF file
(its `tokenizer.chat_template` and `general.*` metadata, read with `aurora_core`) is its whole
contract with the export stage.
"""

from __future__ import annotations

from aurora_core import __version__  # noqa: F401  -- one version for every stage
