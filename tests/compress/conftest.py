"""Compression tests share the session's tiny checkpoint (tests/conftest.py: tiny_ckpt, with the
old names prune_trained_ckpt and quant_trained_ckpt, and quant_static_run); QUANT_FAST lives in
tests/settings.py and is re-exported here for older imports."""

from tests.settings import QUANT_FAST

__all__ = ["QUANT_FAST"]
