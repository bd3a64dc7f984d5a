"""One line, not a traceback, when a library fails inside a compression step.

torch.export, torchao and Torch-Pruning raise long internal errors on models they do not handle;
the user can do nothing with the traceback but can usually switch the step off or pick another
backend. `compression_step` names the step and that option; KTA_DEBUG=1 still shows the cause.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kta_cli.errors import KtaError, first_line


@contextmanager
def compression_step(step: str, avoid: str) -> Iterator[None]:
    """Re-raise any non-KtaError failure as KtaError('<step> failed (...); <avoid>')."""
    try:
        yield
    except KtaError:
        raise
    except Exception as error:  # a library's internal error: the user needs the way around it
        raise KtaError(
            f"{step} failed on this model ({first_line(error)}); {avoid} "
            "(KTA_DEBUG=1 shows the traceback)"
        ) from error
