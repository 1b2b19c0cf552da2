"""Time stepping: the explicit and IMEX integrators, their stability bound, systemic scalars.

Public API:
    make_integrator(backend, model, grid, dtype, choice, dt_max, check_every, order=1,
                    max_change=None) -> ExplicitIntegrator | ImexIntegrator
    IntegratorChoice, integrator_candidates, choose_integrator   (choice.py)
    StepBound, species_rates, explicit_stability_bound, choose_dt (stability.py)
    FieldState, Segment, ExplicitIntegrator                      (explicit.py)
    ImexIntegrator                                               (imex.py)
    HeunPatankar                                                 (second_order.py)
    SystemicRuntime                                              (systemic.py)

Every device-specific operator (the fused step, the line solves) comes from the backend;
nothing here asks which device it runs on.
"""

from __future__ import annotations

import numpy as np

from solver.backends.base import Backend
from solver.grid import Grid
from solver.integrators.choice import IntegratorChoice
from solver.integrators.explicit import ExplicitIntegrator
from solver.integrators.imex import ImexIntegrator
from solver.model import Model


def make_integrator(
    backend: Backend, model: Model, grid: Grid, dtype: np.dtype, choice: IntegratorChoice, dt_max: float,
    check_every: int, order: int = 1, max_change: float | None = None,
) -> ExplicitIntegrator:
    """The integrator `choice` names, built on `backend` (imex when it has implicit species)."""
    if choice.implicit_diffusion:
        return ImexIntegrator(backend, model, grid, dtype, dt_max, check_every, choice.implicit_sinks,
                              choice.implicit_diffusion, order, max_change, choice.implicit_chemotaxis)
    return ExplicitIntegrator(backend, model, grid, dtype, dt_max, check_every, choice.implicit_sinks,
                              order=order, max_change=max_change)
