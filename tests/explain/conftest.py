"""Explain tests share the session's tiny checkpoints (tests/conftest.py: tiny_ckpt, also named
cnn_ckpt, and vit_ckpt); FAST and BARE live in tests/settings.py (EXPLAIN_FAST, EXPLAIN_BARE)
and are re-exported here for older imports."""

import pytest

from tests.settings import EXPLAIN_BARE as BARE
from tests.settings import EXPLAIN_FAST as FAST

__all__ = ["BARE", "FAST"]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every explain test runs on one thread (tests/conftest.py: one_thread says why)."""
    yield
