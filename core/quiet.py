"""Keep third-party notes that mean nothing to a user off the terminal (by logger name; nothing is imported).

bitsandbytes logs, on every CPU import, that an optional Hugging Face hub package ('kernels') is not
installed: it would download a kernel at run time, which Aurora never does.
"""

from __future__ import annotations

import logging

_BNB_CPU = "bitsandbytes.backends.cpu.ops"


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def quiet_bitsandbytes() -> None:
    logger = logging.getLogger(_BNB_CPU)
    if not any(isinstance(f, _DropMessage) for f in logger.filters):
        logger.addFilter(_DropMessage("from kernels-community"))
