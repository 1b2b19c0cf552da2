"""Time stepping: the explicit and IMEX integrators, their stability bound, systemic scalars.

Public API:
    make_integrator(backend, model, grid, dtype, choice, dt_max, check_every, order=1,
                    max_change=None, rtol=None, atol=None) -> ExplicitIntegrator | ImexIntegrator
    IntegratorChoice, integrator_candidates, choose_integrator   (choice.py)
    StepBound, species_rates, explicit_stability_bound, choose_dt (stability.py)
    FieldState, Segment, ExplicitIntegrator                      (explicit.py)
    ImexIntegrator                                               (imex.py)
    PredictorCorrector, phi_functions                            (second_order.py)
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
    check_every: int, order: int = 1, max_change: float | None = None, rtol: float | None = None,
    atol: dict[int, float] | None = None, max_courant: float | None = None,
) -> ExplicitIntegrator:
    """The integrator `choice` names, built on `backend` (imex when it has implicit species).

    rtol/atol: error control (order 2); atol per species index, in the species' units.
    max_courant: the accuracy limit of implicit cell transport (imex, implicit chemotaxis).
    """
    if choice.implicit_diffusion:
        return ImexIntegrator(backend, model, grid, dtype, dt_max, check_every, choice.implicit_sinks,
                              choice.implicit_diffusion, order, max_change, choice.implicit_chemotaxis,
                              rtol=rtol, atol=atol, max_courant=max_courant)
    return ExplicitIntegrator(backend, model, grid, dtype, dt_max, check_every, choice.implicit_sinks,
                              order=order, max_change=max_change, rtol=rtol, atol=atol)
