"""Aurora export: merge the QLoRA adapter into Mixtral and write GGUF files for llama.cpp."""

__version__ = "0.1.0"
