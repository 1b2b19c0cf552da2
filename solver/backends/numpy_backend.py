"""NumPy backend: the explicit step evaluated with array slices on the CPU.

Public API:
    NumpyBackend
    NumpyExplicitStepper(model, grid, dtype)
    NumpyImplicitSolver(lines, with_signal)   the implicit solves of solver/backends/lines.py

The reference every other backend is tested against. The transport is the stencil of
solver/backends/stencil.py evaluated on whole arrays (the same nodes, in the same order of
operations, as the CUDA and compiled CPU kernels print), so they agree to round-off.
Each species read at its neighbours is copied once per step into a preallocated buffer
with one ghost layer (solver/grid.py gives the ghost rules); reactions are evaluated from
the same sympy expressions, lambdified with common subexpressions shared.
"""

from __future__ import annotations

import platform
from functools import lru_cache
from typing import Any

import numpy as np
import sympy as sp

from solver.backends.base import Backend
from solver.backends.lines import diffusion_lines, transport_lines
from solver.backends.stencil import ArrayEvaluator, Neighbour, transport_program
from solver.grid import Grid
from solver.model import Model, Species

_CENTRE = (slice(1, -1),) * 3


def _shifted(axis: int, offset: int) -> tuple[slice, ...]:
    """Slice of a ghost-padded array giving the neighbour at `offset` (-1 or +1) on `axis`."""
    s = [slice(1, -1)] * 3
    s[axis] = slice(1 + offset, None if offset == 1 else -1 + offset)
    return tuple(s)


def _face_slice(axis: int, index: int) -> tuple[Any, ...]:
    s: list[Any] = [slice(1, -1)] * 3
    s[axis] = index
    return tuple(s)


class NumpyExplicitStepper:
    """Forward-Euler step of all species with NumPy (see module docstring)."""

    def __init__(
        self, model: Model, grid: Grid, dtype: np.dtype, implicit_sinks: bool = False,
        implicit_diffusion: frozenset[int] = frozenset(), implicit_chemotaxis: frozenset[int] = frozenset(),
        report_sinks: frozenset[int] = frozenset(),
    ) -> None:
        self.model = model
        self.report_sinks = frozenset(report_sinks)
        self.grid = grid
        self.dtype = np.dtype(dtype)
        self.program = transport_program(model, grid, implicit_diffusion, implicit_chemotaxis)
        need = model.neighbour_species(implicit_diffusion, implicit_chemotaxis)
        padded_shape = tuple(n + 2 for n in grid.shape)
        self.padded = {i: np.empty(padded_shape, dtype=self.dtype) for i, n in enumerate(need) if n}
        self.coords = [grid.centres(a, self.dtype) for a in range(3)]  # in dtype, as the kernel
        self.args = model.arguments()
        n = len(model.species)
        sinks = model.loss_rates() if implicit_sinks else [sp.Integer(0)] * n
        self.has_sink = [e != 0 for e in sinks]
        self.reactions = sp.lambdify(
            self.args, [s.reaction for s in model.species] + sinks, modules="numpy", cse=True
        )
        self.ghost_plan = {i: self._ghost_plan(i) for i in self.padded}
        self.neighbours = [(_shifted(a, -1), _shifted(a, 1)) for a in range(3)]
        self.evaluator = _PaddedEvaluator(model, grid, self.dtype)

    def _ghost_plan(self, s: int) -> list[tuple[tuple, tuple, float | None, float | None]]:
        """(ghost slice, source slice, alpha, beta) for the six faces of species s.

        ghost = alpha * source + beta (FaceBC.ghost_coefficients). alpha is None for a
        plain copy (no-flux: the edge cell, periodic: the opposite one), and -1 for a fixed
        value, filled as beta - source: both as cheap as before the affine rule existed.
        """
        species = self.model.species[s]
        plan = []
        for axis in range(3):
            n, h = self.grid.shape[axis], self.grid.spacing[axis]
            for side, ghost, edge, wrap in ((0, 0, 1, n), (1, n + 1, n, 1)):
                face = species.boundary.face(axis, side)
                source = wrap if face.kind == "periodic" else edge
                alpha = beta = None
                if face.kind in ("value", "permeable"):
                    alpha, beta = face.ghost_coefficients(species.diffusion, h)
                    if alpha == 1.0 and beta == 0.0:  # permeability 0 (or D = 0): no-flux
                        alpha = beta = None
                plan.append((_face_slice(axis, ghost), _face_slice(axis, source), alpha, beta))
        return plan

    def fill_ghosts(self, s: int, field: np.ndarray) -> np.ndarray:
        """Copy species s into its padded buffer and set the six ghost faces."""
        p = self.padded[s]
        p[_CENTRE] = field
        cast = self.dtype.type
        for ghost, source, alpha, beta in self.ghost_plan[s]:
            if alpha is None:  # no-flux copies the edge cell, periodic the opposite one
                p[ghost] = p[source]
            elif alpha == -1.0:  # fixed value g: 2 g - edge
                p[ghost] = cast(beta) - p[source]
            else:  # permeable: alpha * edge + beta, as the CUDA kernel computes it
                p[ghost] = cast(alpha) * p[source] + cast(beta)
        return p

    def step(
        self, u: np.ndarray, u_new: np.ndarray, maps: np.ndarray, t: float, dt: float, systemic=(),
        sinks: np.ndarray | None = None,
    ) -> None:
        """u_new = u + dt F(u, t), or u + dt F / (1 + dt lambda) for species with a sink.
        `sinks`: where
        to write lambda of the species in `report_sinks` (0 without a sink)."""
        cast = self.dtype.type
        dt = cast(dt)
        for s, (c, total, sink) in enumerate(self._right_hand_sides(u, maps, t, systemic)):
            if sinks is not None and s in self.report_sinks:
                sinks[s] = 0 if sink is None else sink
            if total is None:
                u_new[s] = c
            elif sink is not None:  # linearly implicit: u + dt F / (1 + dt lambda)
                np.add(c, dt * total / (cast(1) + dt * sink), out=u_new[s], casting="same_kind")
            else:
                np.add(c, dt * total, out=u_new[s], casting="same_kind")

    def rates(
        self, u: np.ndarray, rate: np.ndarray, sink: np.ndarray, maps: np.ndarray, t: float, systemic=(),
        diffusion: np.ndarray | None = None,
    ) -> None:
        """rate = F(u, t) and sink = lambda(u, t) (0 without implicit sinks), every species;
        `diffusion`: where to write D lap(u) of the species in `report_sinks` (their share
        of F that an IMEX step also treats implicitly)."""
        for s, (_, total, lam, diff) in enumerate(self._right_hand_sides(u, maps, t, systemic, True)):
            rate[s] = 0 if total is None else total
            sink[s] = 0 if lam is None else lam
            if diffusion is not None and s in self.report_sinks:
                diffusion[s] = 0 if diff is None else diff

    def _right_hand_sides(self, u: np.ndarray, maps: np.ndarray, t: float, systemic, with_diffusion: bool = False):
        """Per species: (u_s, F_s or None when F = 0, lambda_s or None when no sink), and
        with_diffusion the diffusion term D lap(u_s) (or None) fourth."""
        cast = self.dtype.type
        t = cast(t)
        padded = {s: self.fill_ghosts(s, u[s]) for s in self.padded}
        scalars = [cast(v) for v in systemic]
        # Saturating terms may overflow an intermediate to inf and then divide by it (-> 0),
        # as IEEE arithmetic on the GPU does silently; a field that really blows up is caught
        # by the integrator's NaN/Inf guard, so these warnings would only be noise.
        with np.errstate(over="ignore", under="ignore"):
            values = self.reactions(*u, *maps[: len(self.model.maps)], t, *self.coords, *scalars)
        n = len(self.model.species)
        rates, sinks = values[:n], values[n:]
        self.evaluator.bind(u, padded, self.neighbours)
        for s in range(n):
            moves = self.program.species[s]
            values = self.evaluator.run(moves, {}) if moves.statements else {}
            total = values.get(moves.total)
            diffusion = values.get(moves.diffusion)
            rate = rates[s]
            if not (np.isscalar(rate) and rate == 0):
                total = rate if total is None else total + rate
            lam = sinks[s] if self.has_sink[s] else None
            yield (u[s], total, lam, diffusion) if with_diffusion else (u[s], total, lam)


class _PaddedEvaluator(ArrayEvaluator):
    """The stencil on NumPy arrays: a neighbour is a shifted view of the species' ghost-padded
    copy (ghost faces filled by NumpyExplicitStepper.fill_ghosts)."""

    def __init__(self, model: Model, grid: Grid, dtype: np.dtype) -> None:
        super().__init__(model, grid, dtype, np)

    def bind(self, u: np.ndarray, padded: dict[int, np.ndarray], neighbours) -> None:
        self.u, self.padded, self.shifts = u, padded, neighbours

    def centre(self, s: int) -> np.ndarray:
        return self.u[s]

    def neighbour(self, node: Neighbour) -> np.ndarray:
        return self.padded[node.s][self.shifts[node.axis][node.side]]


class NumpyImplicitSolver:
    """Line solves of one species along axes in turn, kept in float64 from one axis to the
    next and written back into the field once (solver/backends/lines.py does the algebra)."""

    def __init__(self, lines: tuple, with_signal: bool) -> None:
        self.lines = lines
        self.with_signal = with_signal

    def solve(self, field: np.ndarray, axes: tuple[int, ...], crank_nicolson: bool = False,
              signal: np.ndarray | None = None, scale: np.ndarray | None = None) -> None:
        work = field
        for a in axes:
            line = self.lines[a]
            if self.with_signal:
                solved = line.solve(work, signal, a)
            elif scale is not None:
                solved = line.solve_scaled(work, a, scale)
            else:
                solved = line.solve(work, a)
            # Crank-Nicolson: (I - A/2)^-1 (I + A/2) u = 2 (I - A/2)^-1 u - u
            work = 2.0 * solved - work if crank_nicolson else solved
        field[...] = work


@lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (falls back to platform.processor())."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class NumpyBackend(Backend):
    """Runs on the CPU with NumPy."""

    name = "numpy"
    xp = np

    def __init__(self) -> None:
        super().__init__(device=f"CPU: {cpu_name()}")

    def make_explicit_stepper(
        self, model: Model, grid: Grid, dtype: np.dtype, implicit_sinks: bool = False,
        implicit_diffusion: frozenset[int] = frozenset(), implicit_chemotaxis: frozenset[int] = frozenset(),
        report_sinks: frozenset[int] = frozenset(),
    ) -> NumpyExplicitStepper:
        return NumpyExplicitStepper(model, grid, dtype, implicit_sinks, implicit_diffusion, implicit_chemotaxis,
                                    report_sinks)

    def make_line_solver(self, species: Species, grid: Grid, tau: float, dtype: np.dtype) -> NumpyImplicitSolver:
        return NumpyImplicitSolver(diffusion_lines(species, grid, tau), with_signal=False)

    def make_transport_solver(self, species: Species, grid: Grid, tau: float, dtype: np.dtype) -> NumpyImplicitSolver:
        return NumpyImplicitSolver(transport_lines(species, grid, tau), with_signal=True)
