"""IMEX time stepping: reactions and slow transport explicit, fast diffusion implicit (LOD).

Public API:
    choose_implicit_species(rates) -> frozenset[int]
    ImexIntegrator(backend, model, grid, dtype, dt_max, check_every, implicit_sinks, implicit)

One step from t to t + h (first order, locally one-dimensional splitting as in BioFVM,
Ghaffarizadeh et al., Bioinformatics 32 (2016) 1256):

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
from typing import Any

import numpy as np

from solver.backends.base import Backend
from solver.grid import Grid
from solver.integrators.explicit import ExplicitIntegrator
from solver.integrators.line_solvers import ImplicitDiffusion1D
from solver.model import Model

log = logging.getLogger(__name__)

# Implicit diffusion is used when it lets dt grow at least this many times.
IMPLICIT_RATIO = 10.0


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
    """The explicit fused step, then implicit LOD diffusion of the chosen species."""

    def __init__(
        self, backend: Backend, model: Model, grid: Grid, dtype: np.dtype, dt_max: float,
        check_every: int, implicit_sinks: bool, implicit: frozenset[int],
    ) -> None:
        super().__init__(backend, model, grid, dtype, dt_max, check_every, implicit_sinks,
                         implicit_diffusion=implicit)
        self.implicit = sorted(implicit)
        self.on_gpu = backend.name == "cupy"
        self._factors: dict[float, dict[tuple[int, int], ImplicitDiffusion1D]] = {}

    def factors(self, h: float) -> dict[tuple[int, int], ImplicitDiffusion1D]:
        """Thomas factors per (species, axis) for step h, computed once per step size."""
        if h not in self._factors:
            self._factors.clear()  # a run uses few distinct h; keep the latest only
            self._factors[h] = {}
            for s in self.implicit:
                species = self.model.species[s]
                for a in range(3):
                    line = ImplicitDiffusion1D(
                        self.grid.shape[a], species.diffusion * h / self.grid.spacing[a] ** 2,
                        species.boundary.face(a, 0), species.boundary.face(a, 1),
                    )
                    if self.on_gpu:
                        from solver.backends.cupy_backend import CupyLineSolver

                        line = CupyLineSolver(line, self.grid.shape, a, self.dtype)
                    self._factors[h][(s, a)] = line
        return self._factors[h]

    def _step(self, state: Any, t: float, h: float, systemic: Any) -> None:
        super()._step(state, t, h, systemic)  # explicit part: u_new from u
        factors = self.factors(h)
        for s in self.implicit:
            if self.on_gpu:  # kernels/line_solve.cu, in place on the species' slice
                for a in range(3):
                    factors[(s, a)].solve(state.u_new[s])
                continue
            field = state.u_new[s]
            for a in range(3):
                field = factors[(s, a)].solve(field, a)
            state.u_new[s] = field
