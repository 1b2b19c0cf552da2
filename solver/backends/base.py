"""What every backend offers the integrators: arrays, a stepper factory, reductions.

Public API:
    Backend               base class (numpy and cupy backends derive from it); it makes
                          every device-specific operator an integrator uses:
        .make_explicit_stepper(model, grid, dtype, ...) -> ExplicitStepper
        .make_line_solver(species, grid, tau, dtype) -> ImplicitSolver
        .make_transport_solver(species, grid, tau, dtype) -> ImplicitSolver
        .make_etd_stages(shape, dtype, local) -> the second-order step's stages (backends/etd.py)
        .field_stats(u, cell_volume) -> FieldStats, .first_bad_cell(...)
    FieldStats            per-species totals, minima, maxima and a finiteness flag
    ExplicitStepper       protocol: step(u, u_new, maps, t, dt, systemic) -> None
    ImplicitSolver        protocol: solve(field, axes, crank_nicolson, signal) -> None, in place
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from solver.grid import Grid
from solver.model import Model, Species


class ExplicitStepper(Protocol):
    """One forward-Euler step of all species: reads u (time t), writes u_new (t + dt).

    `systemic` holds the systemic scalars at t, in Model.systemic_names order.
    """

    def step(self, u: Any, u_new: Any, maps: Any, t: float, dt: float, systemic: Any = (), sinks: Any = None) -> None: ...

    def rates(self, u: Any, rate: Any, sink: Any, maps: Any, t: float, systemic: Any = (), diffusion: Any = None) -> None:
        """Write F(u, t) and the sink rate lambda(u, t) >= 0 of every species (no step)."""
        ...


class ImplicitSolver(Protocol):
    """Backward Euler over tau of one species' transport, one axis after another, in place.

    crank_nicolson: each axis solve is turned into a Crank-Nicolson step over 2 tau,
    u <- 2 (I - tau A)^-1 u - u. `signal` is the chemoattractant field (transport solvers
    only), taken at the start of the step. `scale` (diffusion solvers only): a per-cell
    factor on the diffusion number, 1 / (1 + tau lambda) for the sink-scaled line solves
    of the IMEX step (solver/integrators/imex.py).
    """

    def solve(self, field: Any, axes: tuple[int, ...], crank_nicolson: bool = False, signal: Any = None,
              scale: Any = None) -> None: ...


@dataclass(frozen=True)
class FieldStats:
    """Host copies of per-species reductions, computed on the device."""

    total: np.ndarray  # sum over cells (float64), times the cell volume
    minimum: np.ndarray
    maximum: np.ndarray
    finite: np.ndarray  # bool per species: no NaN or Inf anywhere


class Backend:
    """Array module plus kernels for one kind of device."""

    name: str = "base"
    xp: Any = np

    def __init__(self, device: str) -> None:
        self.device = device

    def to_device(self, array: np.ndarray) -> Any:
        """A device copy (a copy on the CPU too: the state must not alias the caller's array)."""
        return self.xp.array(array, copy=True)

    def to_host(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def synchronize(self) -> None:
        """Wait for queued device work (no-op on the CPU)."""

    def configure(self, config: Any) -> None:
        """Take a run config's backend options (the GPU backend: its `gpu` section) for the
        kernels made after this; the CPU backends have none."""

    def make_explicit_stepper(
        self, model: Model, grid: Grid, dtype: np.dtype, implicit_sinks: bool = False,
        implicit_diffusion: frozenset[int] = frozenset(), implicit_chemotaxis: frozenset[int] = frozenset(),
        report_sinks: frozenset[int] = frozenset(),
    ) -> ExplicitStepper:
        """The fused step; species in `implicit_diffusion` get no diffusion term, those in
        `implicit_chemotaxis` no chemotaxis term either (an IMEX integrator solves their
        transport implicitly after the step); for those in `report_sinks` the step writes lambda to its `sinks` argument and the
        rates their diffusion term to their `diffusion` argument."""
        raise NotImplementedError

    def make_etd_stages(self, shape: tuple[int, ...], dtype: np.dtype, local: Sequence[int]) -> Any:
        """The second-order step's predictor and corrector of the species `local`
        (solver/backends/etd.py): here as array expressions of self.xp."""
        from solver.backends.etd import ArrayEtdStages

        return ArrayEtdStages(self.xp, local)

    def make_line_solver(self, species: Species, grid: Grid, tau: float, dtype: np.dtype) -> ImplicitSolver:
        """Backward Euler over tau of `species`' diffusion (Thomas factors computed once;
        solve(..., scale=) the sink-scaled solves, coefficients computed in the sweep)."""
        raise NotImplementedError

    def make_transport_solver(self, species: Species, grid: Grid, tau: float, dtype: np.dtype) -> ImplicitSolver:
        """Backward Euler over tau of `species`' diffusion and upwind chemotaxis up its signal."""
        raise NotImplementedError

    def field_stats(self, u: Any, cell_volume: float) -> FieldStats:
        """Totals, minima, maxima and finiteness per species, reduced on the device.

        The one host transfer is four short arrays; call it every K steps, not every step.
        """
        xp = self.xp
        flat = u.reshape(u.shape[0], -1)
        stats = xp.stack(
            [
                flat.sum(axis=1, dtype=xp.float64) * cell_volume,
                flat.min(axis=1).astype(xp.float64),
                flat.max(axis=1).astype(xp.float64),
                xp.isfinite(flat).all(axis=1).astype(xp.float64),
            ]
        )
        host = self.to_host(stats)
        return FieldStats(host[0], host[1], host[2], host[3].astype(bool))

    def first_bad_cell(self, u_species: Any, nonnegative: bool, tolerance: float) -> tuple[int, ...] | None:
        """Index (i, j, k) of the first non-finite (or too negative) cell of one species."""
        xp = self.xp
        bad = ~xp.isfinite(u_species)
        if nonnegative:
            bad |= u_species < -tolerance
        flat = int(xp.argmax(bad.ravel()))
        if not bool(bad.ravel()[flat]):
            return None
        return tuple(int(v) for v in np.unravel_index(flat, u_species.shape))
