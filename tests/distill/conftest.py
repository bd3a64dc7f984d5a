"""Distillation tests share the session's tiny checkpoint as their teacher (tests/conftest.py:
tiny_ckpt, also named teacher_ckpt); DISTILL_TINY lives in tests/settings.py and is re-exported
here for older imports."""

from tests.settings import DISTILL_TINY

__all__ = ["DISTILL_TINY"]
