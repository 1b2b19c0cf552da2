"""What a command asks of a run, checked before any picture is drawn: bad input (exit 2)
with a one-line message naming what the run has.

Public API:
    checked_run(path, field=None, series=None) -> RunData
    snapshot_time(run, requested) -> (time, note)   the snapshot a --time picks, and a note
                                                    when it is not the time asked for
"""

from __future__ import annotations

import math

from solver.errors import ConfigError, RunFileError
from solver.io.run_file import RunData, load_run

_SHOWN_TIMES = 12  # snapshot times listed in a note, at most


def checked_run(path: str, field: str | None = None, series: list[str] | None = None) -> RunData:
    """The run at `path`; an unknown `field` or `series` is a ConfigError listing the run's."""
    run = load_run(path)
    try:
        if field is not None:
            run.check_field(field)
        if series:
            run.check_series(series)
    except RunFileError as exc:  # the user's name, not the file, is wrong
        raise ConfigError(str(exc)) from None
    return run


def snapshot_time(run: RunData, requested: str | float) -> tuple[str | float, str | None]:
    """`requested` ("last", "first" or a time) as the snapshot it picks: a time between
    snapshots takes the nearest (RunData.time_index), with a note saying so."""
    if isinstance(requested, str):
        return requested, None
    taken = float(run.times[run.time_index(requested)])
    if math.isclose(taken, requested, rel_tol=1e-9, abs_tol=1e-12):
        return taken, None
    shown = ", ".join(f"{t:g}" for t in run.times[:_SHOWN_TIMES]) + (", ..." if run.n_snapshots > _SHOWN_TIMES
                                                                      else "")
    return taken, f"no snapshot at t = {requested:g}; showing the nearest, t = {taken:g} (snapshots at {shown})"
