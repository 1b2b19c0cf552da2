"""The blow-up guard over what is not a field: systemic scalars, plasma levels, diagnostics.

Public API:
    check_record(model, values, t, step, hint="")       a time-series record, before it is written
    check_state(model, systemic, diagnostics, t, step, hint="")   a checkpoint's state, before it is written

The fields are guarded by the integrator (NaN, infinity, negative densities, every
output.check_every steps). A systemic ODE can blow up on its own (rate: "X*X" reaches
infinity in finite time) and take the plasma-driven terms and the diagnostics with it;
without this guard the run would record infinities and finish with exit status 0. Here:

    systemic scalars      finite (a model's own scalar may be negative)
    plasma_<agent>        finite (the exact PK solution of non-negative doses cannot go
                          negative beyond rounding; infinity or NaN is what a blow-up gives)
    rate_<agent>          finite (an infusion rate)
    diagnostics           finite; a `mean` over a region holding no cell is NaN by
                          definition and allowed
    checkpoint state      the systemic values, PK compartments and AUC accumulators finite

A violation is a SimulationError naming the quantity, its value, t and the step; the run
adds the last good checkpoint (a checkpoint is never written of a state that fails).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from solver.errors import SimulationError
from solver.model import Model

_ADVICE = "check its rate and the doses, or lower time.dt or time.safety"


def _bad(value: float) -> str | None:
    if math.isnan(value):
        return "became NaN"
    if math.isinf(value):
        return f"became {'+' if value > 0 else '-'}infinite"
    return None


def check_record(model: Model, values: Mapping[str, float], t: float, step: int, hint: str = "") -> None:
    """Refuse a time-series record whose systemic scalars, plasma levels, infusion rates or
    diagnostics are not finite.

    Raises:
        SimulationError: naming the first bad quantity, its value, t and step, then `hint`.
    """
    checks: list[tuple[str, str, bool]] = [(v.name, "systemic scalar", False) for v in model.systemic]
    for a in model.agents:
        name = f"plasma_{a.name}" if a.pk is not None else f"rate_{a.name}"
        checks.append((name, "plasma level" if a.pk is not None else "infusion rate", False))
    checks += [(d.name, "diagnostic", d.kind == "mean") for d in model.diagnostics]
    for name, kind, nan_allowed in checks:
        if name not in values:
            continue
        value = float(values[name])
        if nan_allowed and math.isnan(value):
            continue
        problem = _bad(value)
        if problem is not None:
            raise SimulationError(f"{kind} {name} {problem} at t={t:.6g} (step {step}); {_ADVICE}{hint}")


def check_state(model: Model, systemic: Mapping[str, Any], diagnostics: Mapping[str, Any], t: float, step: int,
                hint: str = "") -> None:
    """Refuse a checkpoint of a systemic state or AUC accumulators that blew up.

    Raises:
        SimulationError: naming the first bad value, t and step, then `hint`.
    """
    for v, value in zip(model.systemic, np.asarray(systemic["y"], dtype=np.float64)):
        problem = _bad(float(value))
        if problem is not None:
            raise SimulationError(f"systemic scalar {v.name} {problem} at t={t:.6g} (step {step}); {_ADVICE}{hint}")
    for agent, compartments in systemic["pk"].items():
        for value in np.asarray(compartments, dtype=np.float64).reshape(-1):
            problem = _bad(float(value))
            if problem is not None:
                raise SimulationError(f"plasma PK of {agent} {problem} at t={t:.6g} (step {step}); {_ADVICE}{hint}")
    for name, value in diagnostics.get("auc", {}).items():
        problem = _bad(float(value))
        if problem is not None:
            raise SimulationError(f"exposure (AUC) {name} {problem} at t={t:.6g} (step {step}); {_ADVICE}{hint}")
