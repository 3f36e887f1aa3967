"""Aurora export: merge the QLoRA adapter into Mixtral and write GGUF files for llama.cpp."""

from aurora_core import __version__  # noqa: F401  -- one version for every stage
