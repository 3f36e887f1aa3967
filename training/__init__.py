"""Aurora training side: data preparation, the chat template, QLoRA training, the tiny model kit."""

__version__ = "0.1.0"
