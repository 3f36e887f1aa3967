"""Copies of the session's tiny kit and adapter that a hostile test may damage."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture
def kit(export_kit, tmp_path):
    return shutil.copytree(export_kit, tmp_path / "kit")


@pytest.fixture
def adapter(export_adapter, tmp_path):
    return shutil.copytree(export_adapter, tmp_path / "adapter")
