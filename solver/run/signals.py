"""Stopping a run on a signal: finish the step, write a checkpoint, say how to resume.

Public API:
    StopRequest                         set by a signal handler or by the caller
    stop_on_signals(stop, signals=STOP_SIGNALS)   context manager
    STOP_SIGNALS                        SIGINT, SIGTERM and SIGUSR1
    signal_name(signum) -> str

SIGUSR1 is what batch systems send ahead of a time limit or pre-emption (SLURM:
`sbatch --signal=B:USR1@300` to the batch shell, `--signal=USR1@300` to the job's steps),
so it stops the run the same way as SIGTERM: a checkpoint, then exit status 138.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from solver.errors import RunInterrupted

STOP_SIGNALS: tuple[int, ...] = tuple(
    s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGUSR1", None)) if s is not None
)


class StopRequest:
    """A request to stop after the current step, set by a signal handler or by the caller.

    Simulation.run checks it after every step; when set, it writes a checkpoint and
    raises RunInterrupted with the signal number (0 when requested by a caller).
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def request(self, signum: int = 0) -> None:
        if self.signum is None:
            self.signum = signum

    def __bool__(self) -> bool:
        return self.signum is not None


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return "a stop request" if signum == 0 else f"signal {signum}"


@contextmanager
def stop_on_signals(
    stop: StopRequest, signals: tuple[int, ...] = STOP_SIGNALS
) -> Iterator[StopRequest]:
    """While inside: the first SIGINT/SIGTERM/SIGUSR1 sets `stop` (the run finishes its step and
    writes a checkpoint); a second one aborts at once with RunInterrupted (no new
    checkpoint). Outside the main thread (where Python cannot catch signals) this does
    nothing. The previous handlers are restored on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: object) -> None:
        if stop:
            raise RunInterrupted(
                f"aborted by a second {signal_name(signum)}: no checkpoint written for this point",
                signum,
            )
        stop.request(signum)

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield stop
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
