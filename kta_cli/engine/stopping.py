"""Stopping a run on request: Ctrl-C, SIGTERM and SIGUSR1, at a step boundary, resumably.

SIGTERM is what SLURM, Kubernetes and most schedulers send before killing; SIGUSR1 is what SLURM
sends ahead of a time limit with `--signal`. The loop (loop.py) asks stop_requested() after every
step, never acts inside one: half an optimizer update could not be resumed exactly.

Exit codes: 75 (sysexits' EX_TEMPFAIL: stopped on request, run again) for SIGTERM and SIGUSR1,
130 for Ctrl-C, as a shell reports it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
EXIT_STOPPED = 75
EXIT_CTRL_C = 130
_stop_requests: list[str] = []  # the signal asking the loop to stop, set by the handler


def stop_requested() -> str | None:
    """The name of the stop signal received while training ran, if any."""
    return _stop_requests[0] if _stop_requests else None


@contextlib.contextmanager
def stopping_on_signals() -> Iterator[None]:
    """While the loop runs, SIGTERM and SIGUSR1 ask it to stop; a second one ends the process
    at once (the default action), for a user who will not wait for the step to finish."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Python delivers signals to the main thread only; its handlers stay
        return

    def note(signum: int, frame: object) -> None:
        if _stop_requests:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        _stop_requests.append(signal.Signals(signum).name)

    _stop_requests.clear()
    previous = {number: signal.signal(number, note) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _stop_requests.clear()


class Interrupted(Exception):
    """Training stopped on request at a step boundary; last.ckpt holds that step when the run
    has a folder (`checkpoint`, set by the run builder, which knows the folder)."""

    def __init__(self, reason: str = "Ctrl-C", *, epoch: int = 0, step: int = 0) -> None:
        super().__init__(f"stopped by {reason} in epoch {epoch + 1} after step {step}")
        self.reason, self.epoch, self.step = reason, epoch, step
        self.checkpoint: Path | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CTRL_C if self.reason == "Ctrl-C" else EXIT_STOPPED
