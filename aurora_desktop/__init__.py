"""Aurora Desktop: offline Chinese chat with a GGUF model through llama.cpp.

This package never imports torch, transformers, aurora_training or aurora_export: the GGUF file
(its `tokenizer.chat_template` and `general.*` metadata) is its whole contract with the export stage.
"""

from __future__ import annotations

__version__ = "0.1.0"

NOT_BUILT = 3  # exit status of a command whose feature is not built yet


def not_built(prog: str, what: str, issue: int | None = None) -> int:
    """Say plainly that a feature is missing; the caller exits with the returned status."""
    import sys

    where = f"tracked in issue #{issue}" if issue else "no issue filed yet"
    print(f"{prog}: {what} is not built yet ({where}); nothing was done.", file=sys.stderr)
    return NOT_BUILT
