"""Field errors of runs against a reference run of the same config.

What benchmarks/accuracy.py (the shipped arms, per integrator and dt) and
benchmarks/imex_cycle.py (the 256^3 cycle on the GPU) report: per species, the largest
|u - u_ref| over cells and time-series record times, relative to that species' largest
reference value at those times, and the relative error of the final tumour burden.

The runs advance in lockstep from record to record (Simulation.advance lands on each
exactly) and are compared where they are, so no record is kept: at 256^3 one record of
six species is 800 MB in float64.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from solver.diagnostics import DiagnosticsEvaluator
from solver.run import Simulation

# What the default settings (imex order 2, rtol 0.05) deliver on the shipped configs:
# every species' field within 8 % of its largest value, the tumour burden within 2.5 %,
# against a converged reference of the same grid (explicit order 2 at its bound, or imex
# at rtol 2e-3 to 5e-3). Measured on the 2-core CI CPU, float32, the largest field named:
#   quickstart 16^3, 7 days   burden 1.10 %, L 7.9 %   (rtol 0.02: 0.03 %, L 5.7 %, 2.6x the steps;
#                                                      rtol 0.01: 0.008 %, L 1.8 %, 12.5x)
#   quickstart 8^3, 7 days    burden 2.2 %,  L 6.9 %   (rtol 0.02: 0.65 %, N 2.4 %)
#   quickstart 8^3, 4 days    burden 1.2 %,  N 4.4 %
#   combination arm 8^3, first 10 days   burden 0.13 %, L 5.1 %
# The CD8 (L) and NK (N) cells carry the largest errors: they move by chemotaxis up the
# chemokine and enter where the vessels are. Comparisons finer than these (two arms a
# few percent apart) want rtol 0.01 (benchmarks/RESULTS.md, docs/numerics.md).
FIELD_TOLERANCE = 0.08
BURDEN_TOLERANCE = 0.025


@dataclass
class RunCost:
    """What one run of a comparison cost, and its final burden."""

    steps: int = 0
    rejected: int = 0
    seconds: float = 0.0  # stepping only, device synchronised
    burden: float = 0.0
    max_error: float | None = None  # the largest accepted error estimate / tolerance (error control)


@dataclass
class Comparison:
    """Per run label: field errors (species and 'burden') and cost; the reference's cost."""

    names: list[str]
    errors: dict[str, dict[str, float]] = field(default_factory=dict)
    costs: dict[str, RunCost] = field(default_factory=dict)
    reference: RunCost = field(default_factory=RunCost)


def compare_runs(runs: dict[str, Simulation], reference: Simulation, backend=None) -> Comparison:
    """Run `reference` and every run of `runs` (one config each, same grid and records)
    from start to end, and compare their fields at every time-series record."""
    times = reference.plan.series_times
    for label, sim in runs.items():
        if sim.grid.shape != reference.grid.shape or sim.plan.series_times != times:
            raise ValueError(f"{label}: not the reference's grid and record times; compare runs of one config")
    states = {label: sim.start(backend) for label, sim in {**runs, "": reference}.items()}
    xp = states[""].backend.xp
    n = len(reference.model.names)
    worst = {label: np.zeros(n) for label in runs}
    peak = np.zeros(n)
    seconds = dict.fromkeys(states, 0.0)
    for t in times:
        for label, sim in {**runs, "": reference}.items():
            state = states[label]
            started = time.perf_counter()
            sim.advance(state, t)
            state.backend.synchronize()
            seconds[label] += time.perf_counter() - started
        ref = states[""].fields.u.astype(xp.float64)
        peak = np.maximum(peak, _host(states[""].backend, xp.max(xp.abs(ref).reshape(n, -1), axis=1)))
        for label in runs:
            diff = xp.abs(states[label].fields.u.astype(xp.float64) - ref).reshape(n, -1)
            worst[label] = np.maximum(worst[label], _host(states[label].backend, xp.max(diff, axis=1)))
    out = Comparison(list(reference.model.names))
    for label, sim in {**runs, "": reference}.items():
        state = states[label]
        cost = RunCost(int(state.fields.step), int(getattr(state.fields, "rejected", 0)), seconds[label],
                       _burden(sim, state), getattr(state.integrator, "max_error", None) if sim.plan.rtol else None)
        if label == "":
            out.reference = cost
        else:
            out.costs[label] = cost
    for label in runs:
        errors = {"burden": abs(out.costs[label].burden - out.reference.burden) / abs(out.reference.burden)}
        errors.update({name: float(worst[label][i] / peak[i]) if peak[i] > 0 else 0.0
                       for i, name in enumerate(out.names)})
        out.errors[label] = errors
    return out


def within_tolerance(errors: dict[str, float]) -> bool:
    """The defaults' accuracy bar: every field within FIELD_TOLERANCE, burden within BURDEN_TOLERANCE."""
    return errors["burden"] <= BURDEN_TOLERANCE and all(
        e <= FIELD_TOLERANCE for name, e in errors.items() if name != "burden")


def _host(backend, a) -> np.ndarray:
    return np.asarray(backend.to_host(a), dtype=np.float64)


def _burden(sim: Simulation, state) -> float:
    end = sim.config.time.end
    ev = DiagnosticsEvaluator(sim.model, sim.grid, state.backend, sim.dtype)
    return float(ev.evaluate(state.fields.u, state.fields.maps, end, state.scalars(end))["tumour_burden"])
