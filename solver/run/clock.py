"""When a periodic checkpoint is due, from output.checkpoint (steps, simulated time, wall clock).

Public API:
    CheckpointClock(config, t, step)     .due(t, step) -> bool, .reset(t, step)
"""

from __future__ import annotations

import time as wallclock

from solver.config import CheckpointConfig
from solver.timing import periods_passed


class CheckpointClock:
    """Says when a periodic checkpoint is due (at a record), from output.checkpoint."""

    def __init__(self, config: CheckpointConfig | None, t: float, step: int) -> None:
        self.config = config
        self.reset(t, step)

    def reset(self, t: float, step: int) -> None:
        self.t, self.step, self.wall = t, step, wallclock.monotonic()

    def due(self, t: float, step: int) -> bool:
        c = self.config
        if c is None:
            return False
        if c.every_steps is not None and step - self.step >= c.every_steps:
            return True
        if c.every_time is not None:
            crossed = periods_passed(t, c.every_time) > periods_passed(self.t, c.every_time)
            if crossed:
                return True
        return c.every_seconds is not None and wallclock.monotonic() - self.wall >= c.every_seconds
