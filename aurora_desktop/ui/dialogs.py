"""Dialogs: the model panel (before loading), a remote server's address, and a conversation's settings."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout, QLabel, QLineEdit, QPlainTextEdit,
    QSpinBox, QVBoxLayout,
)

from aurora_core import gguf_meta

from ..engine import KV_BYTES_PER_ELEMENT, EngineConfig, SamplingSettings
from aurora_core.model_check import ModelInfo, available_memory, check_gguf
from .i18n import tr

GiB = 2**30
LABEL_CHARS = 200  # a value from the file, shown in a label (the file's own strings can be megabytes)


def describe_model(info: ModelInfo) -> list[tuple[str, str]]:
    """(label, value) rows of what a GGUF says about itself, provenance included."""
    meta = info.metadata
    ftype = meta.get(gguf_meta.GENERAL_FILE_TYPE)
    rows = [
        (tr("Name"), gguf_meta.escape_control(info.name)),
        (tr("File"), f"{info.path.name} ({info.file_size / GiB:.2f} GiB)"),
        (tr("Parameters"), f"{info.n_params / 1e9:.2f} B" if info.n_params >= 1e8 else f"{info.n_params / 1e6:.1f} M"),
        (tr("Experts"), str(info.expert_count or "-")),
        (tr("Quantization"), gguf_meta.file_type_name(ftype)),
        (tr("Context length"), f"{info.context_length:,}"),
    ]
    datasets = gguf_meta.dataset_names(meta)
    for key, label in ((gguf_meta.ADAPTER, tr("Adapter")), (gguf_meta.LORA_RANK, tr("LoRA rank")),
                       (gguf_meta.TRAIN_DATA_SHA256, tr("Training data SHA-256")),
                       (gguf_meta.TRAIN_STEPS, tr("Training steps"))):
        if meta.get(key) is not None:
            limit = 17 if key == gguf_meta.TRAIN_DATA_SHA256 else LABEL_CHARS
            rows.append((label, gguf_meta.escape_control(meta[key], limit)))
    if datasets:
        rows.append((tr("Datasets"), gguf_meta.escape_control(", ".join(str(d)[:LABEL_CHARS] for d in datasets[:20]),
                                                             LABEL_CHARS)))
    from ..cpu import describe

    rows.append((tr("llama.cpp build"), describe()))
    return rows


class ModelPanel(QDialog):
    """What the file says and what loading it needs, against free memory; load settings."""

    def __init__(self, path: str, config: EngineConfig, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle(tr("Open model"))
        self.path = path
        self.info = check_gguf(path, n_ctx=config.n_ctx, memory=1 << 62)  # raises ModelCheckError on a bad file
        layout = QVBoxLayout(self)
        form = QFormLayout()
        for label, value in describe_model(self.info):
            v = QLabel(value)
            v.setTextFormat(Qt.TextFormat.PlainText)  # the file's text, never markup
            v.setWordWrap(True)
            form.addRow(label + ":", v)
        layout.addLayout(form)
        settings = QFormLayout()
        self.ctx = QSpinBox()
        self.ctx.setRange(256, max(256, self.info.context_length or 32768))
        self.ctx.setSingleStep(1024)
        self.ctx.setValue(min(config.n_ctx or EngineConfig.n_ctx, self.ctx.maximum()))
        self.kv = QComboBox()
        self.kv.addItems(list(KV_BYTES_PER_ELEMENT))
        self.kv.setCurrentText(config.kv_cache_type)
        self.threads = QSpinBox()
        self.threads.setRange(1, os.cpu_count() or 1)
        self.threads.setValue(config.n_threads or max(1, (os.cpu_count() or 2) // 2))
        self.gpu = QSpinBox()
        self.gpu.setRange(-1, 999)
        self.gpu.setValue(config.n_gpu_layers)
        self.flash = QCheckBox()
        self.flash.setChecked(config.flash_attn)
        self.shift = QCheckBox(tr("shift the KV cache (seamless); off: read the kept turns again (exact)"))
        self.shift.setChecked(config.context_shift)
        for label, widget in ((tr("Context size"), self.ctx), (tr("KV cache type"), self.kv),
                              (tr("Threads"), self.threads), (tr("GPU layers"), self.gpu),
                              (tr("Flash attention"), self.flash), (tr("Long chats"), self.shift)):
            widget.setAccessibleName(label)
            settings.addRow(label + ":", widget)
        layout.addLayout(settings)
        self.need = QLabel()
        self.need.setWordWrap(True)
        layout.addWidget(self.need)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText(tr("Load"))
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        for w in (self.ctx, self.kv):
            (w.valueChanged if isinstance(w, QSpinBox) else w.currentTextChanged).connect(self.update_need)
        self.update_need()

    def update_need(self) -> None:
        info = self.info  # the KV cache grows linearly with the context and the bytes per element
        kv = int(info.kv_cache_bytes * self.ctx.value() / info.n_ctx * KV_BYTES_PER_ELEMENT[self.kv.currentText()] / 2)
        need, have = info.file_size + kv, available_memory()
        self.need.setText(tr("Loading needs about {need:.2f} GiB (weights {w:.2f} + KV cache {kv:.2f}); "
                             "{have:.1f} GiB is free.").format(need=need / GiB, w=info.file_size / GiB,
                                                               kv=kv / GiB, have=have / GiB))
        self.need.setProperty("warning", need > have)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(need <= have)

    def config(self) -> EngineConfig:
        return EngineConfig(n_ctx=self.ctx.value(), n_threads=self.threads.value(), n_gpu_layers=self.gpu.value(),
                            kv_cache_type=self.kv.currentText(), flash_attn=self.flash.isChecked(),
                            context_shift=self.shift.isChecked())


class RemoteDialog(QDialog):
    """The address of an OpenAI-compatible server (aurora-serve, llama.cpp's server, vLLM), its model and key.
    It says plainly that the chats go there; nothing connects before the user presses Connect."""

    def __init__(self, url: str = "", model: str = "", key: str = "", parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle(tr("Use a model on a server"))
        layout = QVBoxLayout(self)
        intro = QLabel(tr("Chat with a model that runs on another computer, through any OpenAI-compatible server "
                          "(aurora-serve, llama.cpp's server, vLLM). Every message of a chat you send goes to this "
                          "address. The key is kept in the system keyring (or a file only you can read), never "
                          "with the chats."))
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.url, self.model, self.key = QLineEdit(url), QLineEdit(model), QLineEdit(key)
        self.url.setPlaceholderText("http://192.168.1.20:8399/v1")
        self.model.setPlaceholderText(tr("the first the server lists"))
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText(tr("none"))
        for label, widget in ((tr("Address"), self.url), (tr("Model"), self.model), (tr("API key"), self.key)):
            widget.setAccessibleName(label)
            form.addRow(label + ":", widget)
        layout.addLayout(form)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText(tr("Connect"))
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.url.textChanged.connect(self._check)
        self._check()

    def _check(self) -> None:
        ok = self.url.text().strip().startswith(("http://", "https://"))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)

    def values(self) -> tuple[str, str | None, str | None]:
        """(address, model or None, key or None)."""
        return (self.url.text().strip().rstrip("/"), self.model.text().strip() or None,
                self.key.text().strip() or None)


POLICIES = ("drop_oldest", "stop")


class ChatSettingsDialog(QDialog):
    """A conversation's (or a folder's) system prompt, sampling, context policy and knowledge base.

    For a chat in a folder, `inherited` holds the folder's settings: the dialog shows the values the chat runs with,
    and a value left as the folder's is saved as None, so the chat keeps following its folder. A chat can still
    choose no knowledge base where its folder has one (saved as "")."""

    def __init__(self, system: str | None, settings: dict, parent=None, inherited: dict | None = None,
                 inherited_system: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(tr("Chat settings"))
        d = SamplingSettings()
        defaults = {"temperature": d.temperature, "top_p": d.top_p, "max_tokens": d.max_tokens,
                    "context_policy": POLICIES[0], "knowledge_base": ""}
        # what the chat runs with where it sets nothing itself (None: not in a folder, every value its own)
        self.inherited = None if inherited is None else \
            {**defaults, **{k: v for k, v in inherited.items() if v is not None}}
        settings = {**(self.inherited or {}), **{k: v for k, v in settings.items() if v is not None}}
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.system = QPlainTextEdit(system or "")
        self.system.setPlaceholderText(tr("From the folder: {prompt}").format(prompt=inherited_system)
                                       if inherited_system else
                                       tr("e.g. You are a helpful assistant. Answer in Chinese."))
        self.system.setMaximumHeight(90)
        form.addRow(tr("System prompt") + ":", self.system)
        self.temperature = _double(0.0, 2.0, settings.get("temperature", d.temperature), 0.05)
        self.top_p = _double(0.0, 1.0, settings.get("top_p", d.top_p), 0.05)
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(1, 32768)
        self.max_tokens.setValue(int(settings.get("max_tokens", d.max_tokens)))
        self.policy = QComboBox()
        self.policy.addItem(tr("Drop the oldest turns (never the system prompt)"), "drop_oldest")
        self.policy.addItem(tr("Stop at the limit"), "stop")
        self.policy.setCurrentIndex(POLICIES.index(settings.get("context_policy", "drop_oldest")))
        self.knowledge_base = QComboBox()  # answers from the user's documents (aurora_desktop.kb)
        self.knowledge_base.addItem(tr("None"), "")
        from ..kb.index import KnowledgeBase

        for name in KnowledgeBase.names():
            self.knowledge_base.addItem(name, name)
        chosen = self.knowledge_base.findData(settings.get("knowledge_base") or "")
        self.knowledge_base.setCurrentIndex(max(chosen, 0))
        for label, w in ((tr("Temperature"), self.temperature), (tr("Top-p"), self.top_p),
                         (tr("Max answer tokens"), self.max_tokens), (tr("When the context is full"), self.policy),
                         (tr("Knowledge base"), self.knowledge_base)):
            w.setAccessibleName(label)
            form.addRow(label + ":", w)
        layout.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def values(self) -> tuple[str | None, dict]:
        """(system prompt or None, settings): in a folder, None where the value is what the chat would run with
        anyway (the folder's, else the default)."""
        chosen = {"temperature": self.temperature.value(), "top_p": self.top_p.value(),
                  "max_tokens": self.max_tokens.value(), "context_policy": self.policy.currentData(),
                  "knowledge_base": self.knowledge_base.currentData() or ""}
        if self.inherited is None:
            chosen["knowledge_base"] = chosen["knowledge_base"] or None
        else:
            chosen = {k: None if self.inherited[k] == v else v for k, v in chosen.items()}
        return self.system.toPlainText().strip() or None, chosen


def _double(lo: float, hi: float, value: float, step: float) -> QDoubleSpinBox:
    w = QDoubleSpinBox()
    w.setRange(lo, hi)
    w.setSingleStep(step)
    w.setValue(float(value))
    return w


def data_dir() -> Path:
    from PySide6.QtCore import QStandardPaths

    return Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))
