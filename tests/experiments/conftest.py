"""Experiments never touch the weights: the local store only (S3 is covered elsewhere)."""

from __future__ import annotations

import pytest


@pytest.fixture
def storage_backend() -> str:
    return "local"
