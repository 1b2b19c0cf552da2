"""Explicit (forward-Euler) time stepping: one fused launch per step, landing exactly on targets.

Public API:
    FieldState                                     device buffers (u, u_new, maps), t, step, segment
    Segment                                        an interval being stepped: (t0, t_end, n, k)
    ExplicitIntegrator(backend, model, grid, dtype, dt_max, check_every, ...)
        .advance(state, t_end, systemic, after_step) -> bool
                                                   steps to t_end exactly, one fused launch per
                                                   step; False when after_step asked to stop
        .check(state) -> FieldStats                the blow-up guard

The step size and its bound come from solver/integrators/stability.py through the run
plan; an interval between two targets (records, dose starts and stops) is cut into
solver.timing.steps_between(t0, t1, dt) equal steps.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from solver.backends.base import Backend, FieldStats
from solver.errors import SimulationError
from solver.grid import Grid
from solver.integrators.second_order import HeunPatankar
from solver.integrators.systemic import SystemicRuntime
from solver.model import Model
from solver.timing import steps_between

log = logging.getLogger(__name__)

# Step-size control: values under this fraction of a species' maximum are measured
# against it (relative_change), and a step is halved at most MAX_HALVINGS times.
CHANGE_FLOOR = 1e-3
MAX_HALVINGS = 30


@dataclass(frozen=True)
class Segment:
    """An interval [t0, t_end] split into n equal steps, of which k are done.

    Kept in FieldState while a stop request interrupts the interval, so that a run
    resumed from a checkpoint takes exactly the remaining steps of the same size.
    """

    t0: float
    t_end: float
    n: int
    k: int

    @property
    def h(self) -> float:
        return (self.t_end - self.t0) / self.n


@dataclass
class FieldState:
    """Everything that evolves on the device, double-buffered: u is current, u_new scratch.

    `segment` is the interval in progress when stepping stopped before its end
    (None when t is the end of the last interval stepped).
    """

    u: Any
    u_new: Any
    maps: Any
    t: float = 0.0
    step: int = 0
    segment: Segment | None = None
    dt_next: float | None = None  # step-size control: the step to try next (None: dt_max)
    peak: np.ndarray | None = None  # per species, the largest |value| the blow-up guard has seen
    rejected: int = 0  # steps the step-size control rejected and retook smaller


class ExplicitIntegrator:
    """Forward Euler, all species in one fused launch per step; lands exactly on targets.

    order 2: Heun with modified-Patankar sinks (solver/integrators/second_order.py).
    max_change: step-size control (advance_controlled); None: equal steps of dt_max.
    """

    def __init__(
        self, backend: Backend, model: Model, grid: Grid, dtype: np.dtype, dt_max: float, check_every: int,
        implicit_sinks: bool = False, implicit_diffusion: frozenset[int] = frozenset(), order: int = 1,
        max_change: float | None = None, implicit_chemotaxis: frozenset[int] = frozenset(),
    ) -> None:
        self.backend = backend
        self.model = model
        self.grid = grid
        self.dtype = np.dtype(dtype)
        self.dt_max = dt_max
        self.check_every = check_every
        self.order = order
        self.max_change = max_change
        self.stepper = backend.make_explicit_stepper(model, grid, self.dtype, implicit_sinks, implicit_diffusion,
                                                     implicit_chemotaxis)
        shape = (len(model.species),) + grid.shape
        self.second_order = HeunPatankar(backend, shape, self.dtype) if order == 2 else None
        self.controlled = [i for i in range(len(model.species)) if i not in implicit_diffusion] or \
            list(range(len(model.species)))

    def advance(
        self,
        state: FieldState,
        t_end: float,
        systemic: SystemicRuntime | None = None,
        after_step: Callable[[FieldState], bool] | None = None,
    ) -> bool:
        """Step from state.t to exactly t_end with n = ceil((t_end - t) / dt_max) equal steps.

        The systemic scalars (if any) are handed to each step at its start time and
        then advanced over the same step, in lockstep with the grid. `after_step` is
        called after every step; when it returns True before t_end is reached, stepping
        stops there, state.segment records the interval and the steps done, and False
        is returned. A later call with the same t_end (in this run, or in one resumed
        from a checkpoint of this state) takes the remaining steps of the same size, so
        the step sequence is the uninterrupted one.

        With max_change set, the steps are chosen by advance_controlled instead.
        """
        if self.max_change is not None:
            return self.advance_controlled(state, t_end, systemic, after_step)
        segment = state.segment
        if segment is None or segment.t_end != t_end:
            if segment is not None:
                raise RuntimeError(
                    f"advance to t={t_end!r} while the interval to t={segment.t_end!r} is unfinished"
                )
            span = t_end - state.t
            if span <= 0:
                return True
            segment = Segment(state.t, t_end, steps_between(state.t, t_end, self.dt_max), 0)
        t0, n, h = segment.t0, segment.n, segment.h
        for k in range(segment.k, n):
            t = t0 + k * h
            self._step(state, t, h, systemic)
            self._accept(state, t0 + (k + 1) * h)
            if after_step is not None and after_step(state) and k + 1 < n:
                state.segment = Segment(t0, t_end, n, k + 1)
                return False
        state.segment = None
        state.t = t_end
        return True

    def advance_controlled(
        self,
        state: FieldState,
        t_end: float,
        systemic: SystemicRuntime | None = None,
        after_step: Callable[[FieldState], bool] | None = None,
    ) -> bool:
        """Step from state.t to exactly t_end, each step's size chosen by its accuracy.

        A step is accepted when no species changes by more than max_change relative to
        its own value (relative_change); otherwise it is retaken from the same state with
        half the step (step halving; the systemic state is restored too). Step sizes are
        dt_max / 2^k, so the Thomas factors of few sizes are ever needed; after a step
        whose change is under max_change / 2.5 the next one doubles (up to dt_max). The
        last step before t_end is shortened to land on it exactly (or the last two split
        what remains evenly, so no sliver step is taken). `after_step` as in advance; the
        step to try next is kept in state.dt_next, so a run resumed from a checkpoint
        continues with the same steps.
        """
        assert self.max_change is not None
        state.segment = None
        smallest = self.dt_max * 2.0**-MAX_HALVINGS
        while state.t < t_end:
            level = min(state.dt_next or self.dt_max, self.dt_max)
            remaining = t_end - state.t
            if remaining <= level * (1 + 1e-9):
                h, last = remaining, True
            else:
                h, last = (remaining / 2 if remaining < 2 * level else level), False
            t = state.t
            saved = systemic.get_state() if systemic is not None else None
            self._step(state, t, h, systemic)
            change, species = self.relative_change(state.u, state.u_new)
            if not math.isfinite(change):  # NaN or Inf in the new fields: the guard names the cell
                self.check(FieldState(state.u_new, state.u, state.maps, t + h, state.step + 1))
            if not change <= self.max_change:
                if h <= smallest:
                    raise SimulationError(
                        f"step-size control: {self.model.species[species].name} changes by {change:.3g} "
                        f"(relative) in a step of {h:.3g} at t={t:.6g}, above time.max_change = "
                        f"{self.max_change:g} even after {MAX_HALVINGS} halvings; check the reaction "
                        "terms or raise time.max_change"
                    )
                if systemic is not None:
                    systemic.set_state(saved)
                while level >= h:  # the largest dt_max / 2^k below the step just rejected
                    level /= 2
                state.dt_next = level
                state.rejected += 1
                continue
            self._accept(state, t_end if last else t + h)
            state.dt_next = min(2 * level, self.dt_max) if change < self.max_change / 2.5 else level
            if after_step is not None and after_step(state) and state.t < t_end:
                return False
        return True

    def _accept(self, state: FieldState, t_new: float) -> None:
        """The step just taken becomes the state (buffers swapped); the guard every check_every."""
        state.u, state.u_new = state.u_new, state.u
        state.step += 1
        state.t = t_new
        if state.step % self.check_every == 0:
            self.check(state)

    def relative_change(self, u: Any, u_new: Any) -> tuple[float, int]:
        """Largest |u_new - u| / (|u| + 1e-3 max|u|) of the controlled species, and which one.

        The controlled species are those stepped explicitly (all of them for the explicit
        integrator; for imex, those whose diffusion is not implicit: the cell populations
        whose reactions set the accuracy). The implicitly diffused fields (drugs,
        cytokines) are solved by L-stable backward Euler with their losses linearly
        implicit; a fast-clearing one would otherwise hold every step to 5 % of its decay
        time although it decays without error growth; its effect reaches the controlled
        species through their reactions. Values below a thousandth of a species' largest
        value are measured against that floor, so cells where a species is all but absent
        do not hold the step down. A species that is zero everywhere at the start of the
        step is not counted: its first appearance has no relative size.
        """
        xp = self.backend.xp
        index = self.controlled
        old = u[index].reshape(len(index), -1)
        new = u_new[index].reshape(len(index), -1)
        scale = xp.max(xp.abs(old), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            change = xp.max(xp.abs(new - old) / (xp.abs(old) + CHANGE_FLOOR * scale[:, None]), axis=1)
        change = self.backend.to_host(xp.where(scale > 0, change, 0).astype(xp.float64))
        i = int(np.argmax(np.where(np.isnan(change), np.inf, change)))
        return float(change[i]), index[i]

    def _step(self, state: FieldState, t: float, h: float, systemic: SystemicRuntime | None) -> None:
        """One step: u_new from u (one fused launch); the systemic scalars advance with it."""
        if self.second_order is not None:
            self.second_order.step(self.stepper, state.u, state.u_new, state.maps, t, h, systemic)
            return
        if systemic is None:
            self.stepper.step(state.u, state.u_new, state.maps, t, h)
        else:
            self.stepper.step(state.u, state.u_new, state.maps, t, h, systemic.values(t))
            systemic.advance(t, h)

    def check(self, state: FieldState, record_peak: bool = True) -> FieldStats:
        """Blow-up guard: NaN/Inf, or negative values beyond round-off in a non-negative species.

        Round-off is measured against the largest value the species has had in the run
        (state.peak, kept across checks and checkpoints), not its current maximum: a drug
        cleared to 1e-25 of its peak may undershoot zero by as much without anything being
        wrong (Crank-Nicolson, order 2, cannot be unconditionally positive: Bolley and
        Crouzeix, RAIRO Anal. Numer. 12 (1978) 237), while a blow-up is of the field's size.
        record_peak=False checks without adding this moment to the peak: a check that only
        an interrupted run makes (before its checkpoint) must not change what the guard
        tolerates afterwards, so a resumed run decides exactly as the uninterrupted one.
        Returns the per-species reductions it computed, for the caller to record.
        """
        stats = self.backend.field_stats(state.u, self.grid.cell_volume)
        eps = float(np.finfo(self.dtype).eps)
        size = np.where(stats.finite.astype(bool), np.maximum(np.abs(stats.maximum), np.abs(stats.minimum)), 0.0)
        peak = size if state.peak is None else np.maximum(state.peak, size)
        if record_peak:
            state.peak = peak
        for i, s in enumerate(self.model.species):
            scale = max(float(peak[i]), np.finfo(self.dtype).tiny)
            tolerance = 64 * eps * scale
            negative = s.nonnegative and stats.minimum[i] < -tolerance
            if stats.finite[i] and not negative:
                continue
            cell = self.backend.first_bad_cell(state.u[i], s.nonnegative, tolerance)
            what = "became NaN or infinite" if not stats.finite[i] else f"went negative ({stats.minimum[i]:.3g})"
            raise SimulationError(
                f"species {s.name} {what} at cell {cell} at t={state.t:.6g} (step {state.step}); "
                "lower time.safety or time.dt, or check the reaction terms"
            )
        return stats
