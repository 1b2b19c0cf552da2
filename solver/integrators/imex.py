"""IMEX time stepping: reactions and slow transport explicit, fast diffusion implicit (LOD).

Public API:
    choose_implicit_species(rates) -> frozenset[int]
    ImexIntegrator(backend, model, grid, dtype, dt_max, check_every, implicit_sinks, implicit,
                   order=1, max_change=None, implicit_chemotaxis=frozenset())

One step from t to t + h (order 1: locally one-dimensional splitting as in BioFVM,
Ghaffarizadeh et al., Bioinformatics 32 (2016) 1256; order 2: see ImexIntegrator):

    u*      = u + h F(u)                     the fused explicit step, without the diffusion
                                             of the implicit species (their reactions and
                                             sinks included, linearly implicit if chosen)
    u_new   = Sz Sy Sx u*                    for each implicit species: backward Euler in
                                             x, then y, then z, (I - r L_a) v = rhs, r = D h / h_a^2

so drugs and oxygen, which diffuse 1e3-1e5 times faster than cells move, no longer bound
dt; the step is limited by the explicit parts (cell motility, chemotaxis, reactions).
The line solves are batched Thomas solves with factors computed once per step size
(solver/integrators/line_solvers.py on the CPU, kernels/line_solve.cu launched by
solver/backends/cupy_backend.CupyLineSolver on the GPU, one thread per line).
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from typing import Any

import numpy as np

from solver.backends.base import Backend
from solver.grid import Grid
from solver.integrators.explicit import ExplicitIntegrator
from solver.integrators.line_solvers import ImplicitDiffusion1D
from solver.integrators.transport_solvers import ImplicitTransport1D
from solver.model import Model

log = logging.getLogger(__name__)

# Implicit diffusion is used when it lets dt grow at least this many times.
IMPLICIT_RATIO = 10.0
# Thomas factors kept for this many step sizes (step-size control halves and doubles h).
FACTOR_CACHE = 8


def choose_implicit_species(rates: list[tuple[float, float]]) -> frozenset[int]:
    """The fastest-diffusing species to solve implicitly, chosen to allow the largest dt.

    Taking the k fastest diffusers implicitly leaves as explicit bound the largest of the
    other species' diffusion rates and every species' non-diffusive rate ("rest"); a set
    is worth it when each chosen species diffuses faster than that rest and dt grows by
    at least IMPLICIT_RATIO (otherwise implicit diffusion buys little and costs line
    solves). Of those, the set with the smallest rest (largest dt) is taken.

    Args:
        rates: per species (diffusion rate, rate of everything else), in 1/time, from
            solver.integrators.explicit.species_rates.
    """
    order = sorted(range(len(rates)), key=lambda i: rates[i][0], reverse=True)
    other = max((r[1] for r in rates), default=0.0)
    explicit_rate = max((sum(r) for r in rates), default=0.0)
    best: frozenset[int] = frozenset()
    best_rest = math.inf
    for k in range(1, len(order) + 1):
        chosen = order[:k]
        if rates[chosen[-1]][0] <= 0:
            break
        rest = max([other] + [rates[i][0] for i in order[k:]])
        worth_it = rates[chosen[-1]][0] > rest and explicit_rate >= IMPLICIT_RATIO * rest
        if worth_it and rest < best_rest:
            best, best_rest = frozenset(chosen), rest
    return best


class ImexIntegrator(ExplicitIntegrator):
    """The explicit fused step, then implicit LOD transport of the chosen species.

    Species in `implicit` have their diffusion solved implicitly (constant-coefficient
    Thomas solves, factors kept per step size); those also in `implicit_chemotaxis` have
    diffusion and upwind chemotaxis solved together, with the chemoattractant at the
    start of the step (solver/integrators/transport_solvers.py).

    order 1: u_new = Sz Sy Sx E(h) u, backward Euler per axis (module docstring).
    order 2: Strang splitting u_new = C(h/2) E2(h) C(h/2) u, with C(h/2) Crank-Nicolson
    per axis (x, y, z before, z, y, x after) and E2 the second-order explicit part
    (solver/integrators/second_order.py). The axis operators of one species' diffusion
    commute (constant D on a tensor grid), so the products are second order too; for
    implicit chemotaxis the first half step takes the chemoattractant at t, the second at
    t + h.
    """

    def __init__(
        self, backend: Backend, model: Model, grid: Grid, dtype: np.dtype, dt_max: float,
        check_every: int, implicit_sinks: bool, implicit: frozenset[int], order: int = 1,
        max_change: float | None = None, implicit_chemotaxis: frozenset[int] = frozenset(),
    ) -> None:
        super().__init__(backend, model, grid, dtype, dt_max, check_every, implicit_sinks,
                         implicit_diffusion=implicit, order=order, max_change=max_change,
                         implicit_chemotaxis=implicit_chemotaxis)
        self.implicit = sorted(implicit)
        self.chemotactic = frozenset(implicit_chemotaxis)
        self.on_gpu = backend.name == "cupy"
        # (species, axis) -> line solver, per backward-Euler time tau (h, or h/4 for the
        # half-rate solves of Crank-Nicolson over h/2); step-size control uses few tau.
        self._factors: OrderedDict[float, dict[tuple[int, int], Any]] = OrderedDict()
        shape = (len(model.species),) + grid.shape
        self._half = backend.xp.empty(shape, self.dtype) if order == 2 else None  # C(h/2) u
        # the c' factors of the GPU transport solves, one field shared by all of them
        self._scratch = backend.xp.empty(grid.shape, self.dtype) if self.on_gpu and self.chemotactic else None

    def factors(self, tau: float) -> dict[tuple[int, int], Any]:
        """Line solvers per (species, axis) for backward Euler over tau, built once per tau."""
        if tau in self._factors:
            self._factors.move_to_end(tau)
            return self._factors[tau]
        if len(self._factors) >= FACTOR_CACHE:
            self._factors.popitem(last=False)
        out = {}
        for s in self.implicit:
            species = self.model.species[s]
            for a in range(3):
                low, high, h = species.boundary.face(a, 0), species.boundary.face(a, 1), self.grid.spacing[a]
                if s in self.chemotactic:
                    line: Any = ImplicitTransport1D(self.grid.shape[a], tau, h, species.diffusion,
                                                    species.chemotaxis.sensitivity, low, high)
                else:
                    line = ImplicitDiffusion1D(self.grid.shape[a], species.diffusion * tau / h**2, low, high,
                                               diffusion=species.diffusion, h=h)
                if self.on_gpu:
                    from solver.backends.cupy_backend import CupyLineSolver, CupyTransportSolver

                    if s in self.chemotactic:
                        line = CupyTransportSolver(line, self.grid.shape, a, self.dtype, self._scratch)
                    else:
                        line = CupyLineSolver(line, self.grid.shape, a, self.dtype)
                out[(s, a)] = line
        self._factors[tau] = out
        return out

    def _backward_euler(self, u: Any, tau: float, axes: tuple[int, ...], signals: Any,
                        crank_nicolson: bool = False) -> None:
        """Backward Euler over tau (or Crank-Nicolson over 2 tau) along `axes` in turn, in
        place on the implicit species of u; `signals` holds the chemoattractants."""
        factors = self.factors(tau)
        for s in self.implicit:
            signal = signals[self.model.species[s].chemotaxis.signal] if s in self.chemotactic else None
            field = u[s]
            for a in axes:
                line = factors[(s, a)]
                rhs = field.copy() if (crank_nicolson and self.on_gpu) else field
                if self.on_gpu:  # kernels/line_solve.cu or transport_solve.cu, in place
                    line.solve(rhs, signal) if signal is not None else line.solve(rhs)
                    solved = rhs
                else:
                    solved = line.solve(rhs, signal, a) if signal is not None else line.solve(rhs, a)
                if crank_nicolson:  # (I - A/2)^-1 (I + A/2) u = 2 (I - A/2)^-1 u - u
                    if self.on_gpu:
                        self.backend.xp.subtract(2 * solved, field, out=field)
                    else:
                        field = 2.0 * solved - field
                else:
                    field = solved
            if not self.on_gpu:
                u[s] = field

    def _step(self, state: Any, t: float, h: float, systemic: Any) -> None:
        if self.order == 2:
            self._strang_step(state, t, h, systemic)
            return
        super()._step(state, t, h, systemic)  # explicit part: u_new from u
        self._backward_euler(state.u_new, h, (0, 1, 2), state.u)

    def _strang_step(self, state: Any, t: float, h: float, systemic: Any) -> None:
        half = self._half
        half[...] = state.u  # u stays untouched: a step rejected by the step-size control is retaken
        # Crank-Nicolson over h/2 is backward Euler at half the rate, tau = h/4 (second_order.py)
        self._backward_euler(half, h / 4, (0, 1, 2), state.u, crank_nicolson=True)
        self.second_order.step(self.stepper, half, state.u_new, state.maps, t, h, systemic)
        self._backward_euler(state.u_new, h / 4, (2, 1, 0), state.u_new, crank_nicolson=True)
