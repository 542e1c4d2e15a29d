"""Shared fixtures.

Real data lives outside the repository (its license forbids redistribution) and is
found through ``TASTEMAKER_DATA``.  Tests that need it skip only when the variable is
unset, and fail when it is set but the files are missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _data_root() -> Path | None:
    value = os.environ.get("TASTEMAKER_DATA")
    if not value:
        return None
    return Path(value)


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if root is None:
        pytest.skip("TASTEMAKER_DATA is not set")
    if not root.is_dir():
        pytest.fail(f"TASTEMAKER_DATA={root} is set but is not a directory")
    return root


@pytest.fixture(scope="session")
def ml100k_dir(data_root: Path) -> Path:
    path = data_root / "ml-100k"
    if not (path / "u.data").is_file():
        pytest.fail(f"MovieLens 100K not found at {path} (TASTEMAKER_DATA is set)")
    return path


@pytest.fixture(scope="session")
def lastfm_dir(data_root: Path) -> Path:
    path = data_root / "lastfm-2k"
    if not (path / "user_artists.dat").is_file():
        pytest.fail(f"Last.fm 2K not found at {path} (TASTEMAKER_DATA is set)")
    return path
