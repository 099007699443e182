"""Fixtures of the robustness suite: every generating system of the registry as a tiny saved pipeline (the
session's `tiny_pipeline_folders`), loaded through the registry, and private copies of those folders to break."""

from __future__ import annotations

import shutil

import pytest
from robust_utils import GENERATORS

from hf_sign.systems import get_system


@pytest.fixture(scope="session")
def robust_pipes(tiny_pipeline_folders):
    """`{system name: pipeline}` loaded from the tiny folders through the registry."""
    pipes = {}
    for name in GENERATORS:
        pipe = get_system(name).pipeline_class().from_pretrained(str(tiny_pipeline_folders[name]))
        pipe.set_progress_bar_config(disable=True)
        pipes[name] = pipe
    return pipes


@pytest.fixture
def folder_copy(tiny_pipeline_folders, tmp_path):
    """`copy(name)`: a private copy of a system's tiny pipeline folder, to break."""

    def copy(name: str):
        dest = tmp_path / name
        shutil.copytree(tiny_pipeline_folders[name], dest)
        return dest

    return copy
