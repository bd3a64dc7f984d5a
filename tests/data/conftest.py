"""Data tests call library code after in-process `kta` runs, whose Hydra logging set-up leaves
root handlers on streams pytest has closed since; drop those, so a log line (the image-folder
cache says what it did) does not print a logging error into the next test's captured stderr."""

import logging

import pytest


@pytest.fixture(autouse=True)
def _no_handlers_on_closed_streams() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        stream = getattr(handler, "stream", None)
        if stream is not None and getattr(stream, "closed", False):
            root.removeHandler(handler)
