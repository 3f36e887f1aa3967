"""Aurora training side: data preparation, the chat template, QLoRA training, the tiny model kit."""

from aurora_core import __version__  # noqa: F401  -- one version for every stage
