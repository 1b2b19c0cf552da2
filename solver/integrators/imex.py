"""IMEX time stepping: reactions and slow transport explicit, fast diffusion implicit (LOD).

Public API:
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
(solver/backends/lines.py); the backend makes them (NumPy on the CPU, kernels/line_solve.cu
and kernels/transport_solve.cu on the GPU, one thread per line), so nothing here depends
on the device.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

import numpy as np

from solver.backends.base import Backend, ImplicitSolver
from solver.grid import Grid
from solver.integrators.explicit import ExplicitIntegrator
from solver.model import Model

log = logging.getLogger(__name__)

# Implicit solvers kept for this many step sizes (step-size control halves and doubles h).
FACTOR_CACHE = 8


class ImexIntegrator(ExplicitIntegrator):
    """The explicit fused step, then implicit LOD transport of the chosen species.

    Species in `implicit` have their diffusion solved implicitly (constant-coefficient
    Thomas solves, factors kept per step size); those also in `implicit_chemotaxis` have
    diffusion and upwind chemotaxis solved together, with the chemoattractant at the
    start of the step (solver/backends/lines.py).

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
        # species -> implicit solver, per backward-Euler time tau (h, or h/4 for the
        # half-rate solves of Crank-Nicolson over h/2); step-size control uses few tau.
        self._solvers: OrderedDict[float, dict[int, ImplicitSolver]] = OrderedDict()
        shape = (len(model.species),) + grid.shape
        self._half = backend.xp.empty(shape, self.dtype) if order == 2 else None  # C(h/2) u

    def solvers(self, tau: float) -> dict[int, ImplicitSolver]:
        """The backend's implicit solver of each implicit species over tau, built once per tau."""
        if tau in self._solvers:
            self._solvers.move_to_end(tau)
            return self._solvers[tau]
        if len(self._solvers) >= FACTOR_CACHE:
            self._solvers.popitem(last=False)
        out = {}
        for s in self.implicit:
            species = self.model.species[s]
            make = self.backend.make_transport_solver if s in self.chemotactic else self.backend.make_line_solver
            out[s] = make(species, self.grid, tau, self.dtype)
        self._solvers[tau] = out
        return out

    def _backward_euler(self, u: Any, tau: float, axes: tuple[int, ...], signals: Any,
                        crank_nicolson: bool = False) -> None:
        """Backward Euler over tau (or Crank-Nicolson over 2 tau) along `axes` in turn, in
        place on the implicit species of u; `signals` holds the chemoattractants."""
        for s, solver in self.solvers(tau).items():
            signal = signals[self.model.species[s].chemotaxis.signal] if s in self.chemotactic else None
            solver.solve(u[s], axes, crank_nicolson, signal)

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
