"""Shared fixtures: the tiny Mixtral kit, built once per test session by the product's own command."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """A tiny Mixtral-8x7B-Instruct-shaped checkpoint folder (bf16 weights, as released)."""
    from aurora_training.tiny import TinyBaseConfig, write_tiny_base

    return write_tiny_base(tmp_path_factory.mktemp("kit") / "tiny-base", TinyBaseConfig())
