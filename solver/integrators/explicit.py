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
from solver.integrators.second_order import PredictorCorrector
from solver.integrators.systemic import SystemicRuntime
from solver.model import Model
from solver.timing import steps_between

log = logging.getLogger(__name__)

# Step-size control: values under this fraction of a species' maximum are measured
# against it (relative_change, and the error weights of time.rtol without time.atol), and
# a step is halved at most MAX_HALVINGS times.
CHANGE_FLOOR = 1e-3
MAX_HALVINGS = 30
# Error control (time.rtol): the next step is h (0.9 / err)^(1/2), between these factors
# of the last; step sizes are rounded down to dt_max 2^(-k/LEVELS_PER_OCTAVE), so that the
# implicit solvers' factors of few step sizes are ever needed.
SAFETY, GROW_MAX, SHRINK_MIN, LEVELS_PER_OCTAVE = 0.9, 2.0, 0.2, 8


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

    order 2: the exponential predictor-corrector (solver/integrators/second_order.py).
    max_change: a guard on the relative change per step; rtol (order 2): error control
    with the predictor-corrector's embedded estimate (advance_controlled). Without
    either: equal steps of dt_max.
    """

    def __init__(
        self, backend: Backend, model: Model, grid: Grid, dtype: np.dtype, dt_max: float, check_every: int,
        implicit_sinks: bool = False, order: int = 1, max_change: float | None = None,
        rtol: float | None = None, atol: dict[int, float] | None = None,
    ) -> None:
        self.backend = backend
        self.model = model
        self.grid = grid
        self.dtype = np.dtype(dtype)
        self.dt_max = dt_max
        self.check_every = check_every
        self.order = order
        self.max_change = max_change
        self.rtol = rtol
        self.atol = atol or {}
        self._atol: Any = None  # the atol per species on the device, made on first use
        self.max_courant: float | None = None  # the implicit transport's accuracy limit (imex)
        self.implicit_sinks = implicit_sinks
        n = len(model.species)
        self.stepper = self._make_stepper()
        self.shape = (n,) + grid.shape
        self.pc = self._make_predictor_corrector() if order == 2 else None
        self.controlled = self._controlled_species()
        self.last_error: float | None = None  # the error estimate of the last accepted step (err / tolerance)
        self.max_error = 0.0  # the largest of them so far in this process

    def _make_stepper(self):
        return self.backend.make_explicit_stepper(self.model, self.grid, self.dtype, self.implicit_sinks)

    def _make_predictor_corrector(self) -> PredictorCorrector:
        return PredictorCorrector(self.backend, self.shape, self.dtype, explicit=range(len(self.model.species)))

    def _controlled_species(self) -> list[int]:
        """Species whose relative change the max_change guard measures."""
        return list(range(len(self.model.species)))

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

        With max_change or rtol set, the steps are chosen by advance_controlled instead.
        """
        if self.max_change is not None or self.rtol is not None or self.max_courant is not None:
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
            self.step(state, t, h, systemic)
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

        A step is accepted when its error estimate (time.rtol; error_ratio) is at most 1
        and no species changes by more than max_change relative to its own value
        (relative_change); otherwise it is retaken from the same state with a smaller step
        (the systemic state is restored too). With rtol the next step is
        h (SAFETY / err)^(1/2), between SHRINK_MIN and GROW_MAX times the last, rounded
        down to a level dt_max 2^(-k/8); with max_change alone steps halve on rejection and
        double after a step whose change is under max_change / 2.5 (levels dt_max / 2^k).
        The last step before t_end is shortened to land on it exactly (or the last two
        split what remains evenly, so no sliver step is taken). `after_step` as in
        advance; the step to try next is kept in state.dt_next, so a run resumed from a
        checkpoint continues with the same steps.
        """
        state.segment = None
        smallest = self.dt_max * 2.0**-MAX_HALVINGS
        while state.t < t_end:
            level = min(state.dt_next or self.dt_max, self.dt_max)
            limit = self.step_limit(state)
            if limit is not None and limit < level:
                level = self._level(limit)
            remaining = t_end - state.t
            if remaining <= level * (1 + 1e-9):
                h, last = remaining, True
            else:
                h, last = (remaining / 2 if remaining < 2 * level else level), False
            t = state.t
            saved = systemic.get_state() if systemic is not None else None
            error = self.step(state, t, h, systemic)
            change, species = (self.relative_change(state.u, state.u_new) if self.max_change is not None
                               else (0.0, 0))
            if not (math.isfinite(change) and (error is None or math.isfinite(error))):
                # NaN or Inf in the new fields: the guard names the cell
                self.check(FieldState(state.u_new, state.u, state.maps, t + h, state.step + 1))
            accept = (self.max_change is None or change <= self.max_change) and (error is None or error <= 1.0)
            if not accept:
                if h <= smallest:
                    raise SimulationError(self._too_small(change, species, error, h, t))
                if systemic is not None:
                    systemic.set_state(saved)
                state.dt_next = self._shrink(level, h, error)
                state.rejected += 1
                continue
            self._accept(state, t_end if last else t + h)
            if error is not None:
                self.last_error = error
                self.max_error = max(self.max_error, error)
            state.dt_next = self._grow(level, change, error)
            if after_step is not None and after_step(state) and state.t < t_end:
                return False
        return True

    def step_limit(self, state: FieldState) -> float | None:
        """The largest step the state allows for accuracy beyond the error estimate (None:
        no limit); imex with implicit transport limits its Courant number."""
        return None

    def _too_small(self, change: float, species: int, error: float | None, h: float, t: float) -> str:
        if error is not None and error > 1.0:
            what = (f"the error estimate is {error:.3g} times time.rtol = {self.rtol:g} (with its atol) in a step "
                    f"of {h:.3g}")
            fix = "check the reaction terms or raise time.rtol"
        else:
            what = (f"{self.model.species[species].name} changes by {change:.3g} (relative) in a step of {h:.3g}, "
                    f"above time.max_change = {self.max_change:g}")
            fix = "check the reaction terms or raise time.max_change"
        return f"step-size control: {what} at t={t:.6g} even after {MAX_HALVINGS} halvings; {fix}"

    def _level(self, h: float) -> float:
        """The largest step level dt_max 2^(-k / LEVELS_PER_OCTAVE) <= h (levels reuse solver factors)."""
        if h >= self.dt_max:
            return self.dt_max
        k = math.ceil(LEVELS_PER_OCTAVE * math.log2(self.dt_max / h) - 1e-9)
        return self.dt_max * 2.0 ** (-k / LEVELS_PER_OCTAVE)

    def _shrink(self, level: float, h: float, error: float | None) -> float:
        """The step to retry with after a rejection of a step of h."""
        if error is not None and error > 1.0:
            return self._level(h * max(SHRINK_MIN, min(SAFETY, SAFETY / math.sqrt(error))))
        while level >= h:  # the largest dt_max / 2^k below the step just rejected
            level /= 2
        return level

    def _grow(self, level: float, change: float, error: float | None) -> float:
        """The step to try after an accepted one taken at `level`."""
        if error is not None:
            factor = GROW_MAX if error <= 0 else min(GROW_MAX, max(SHRINK_MIN, SAFETY / math.sqrt(error)))
            if self.max_change is not None and change >= self.max_change / 2.5:
                factor = min(factor, 1.0)
            return min(self._level(level * factor), self.dt_max)
        if self.max_change is None:  # only a step limit (the Courant number): back to dt_max
            return self.dt_max
        return min(2 * level, self.dt_max) if change < self.max_change / 2.5 else level

    def error_ratio(self, final: Any, embedded: Any) -> float:
        """max over species and cells of |final - embedded| / (atol_s + rtol |final|).

        `embedded` is the step's embedded first-order solution (second_order.py); atol_s per
        species comes from the plan (time.atol, or rtol * 1e-3 * the species' scale). One
        device-to-host transfer.
        """
        xp = self.backend.xp
        n = len(self.model.species)
        if self._atol is None:
            self._atol = xp.asarray([self.atol.get(i, 0.0) for i in range(n)], dtype=self.dtype)[:, None]
        new = final.reshape(n, -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = xp.abs(new - embedded.reshape(n, -1)) / (self._atol + self.dtype.type(self.rtol) * xp.abs(new))
        return float(self.backend.to_host(xp.max(ratio).astype(xp.float64)))

    def _accept(self, state: FieldState, t_new: float) -> None:
        """The step just taken becomes the state (buffers swapped); the guard every check_every."""
        state.u, state.u_new = state.u_new, state.u
        state.step += 1
        state.t = t_new
        if state.step % self.check_every == 0:  # the peak is kept at records only: check_every
            self.check(state, record_peak=False)  # changes no decision of a later check

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

    def step(self, state: FieldState, t: float, h: float, systemic: SystemicRuntime | None) -> float | None:
        """One step: u_new from u; the systemic scalars advance with it. Returns the error
        estimate (err / tolerance) with time.rtol, else None.

        order 1: one fused launch (forward Euler, linearly implicit sinks); order 2: the
        exponential predictor-corrector.
        """
        if self.pc is not None:
            weights = self.error_ratio if self.rtol is not None else None
            return self.pc.step(self.stepper, state.u, state.u_new, state.maps, t, h, systemic, weights=weights)
        if systemic is None:
            self.stepper.step(state.u, state.u_new, state.maps, t, h)
        else:
            self.stepper.step(state.u, state.u_new, state.maps, t, h, systemic.values(t, fields=state.u))
            systemic.advance(t, h)
        return None

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
