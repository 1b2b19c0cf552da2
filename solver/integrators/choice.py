"""Which integrator a run uses, what it takes implicitly, and why.

Public API:
    IntegratorChoice(name, reason, implicit_sinks, implicit_diffusion, implicit_chemotaxis, bound)
    integrator_candidates(model, grid, u0, maps, systemic0, time) -> {"explicit": .., "imex": ..}
    choose_integrator(candidates, time, names) -> IntegratorChoice
    choose_implicit_species(rates) -> frozenset[int]
    IMPLICIT_RATIO

`time.integrator: auto` takes imex when solving the fast species' diffusion implicitly
lets dt grow at least IMPLICIT_RATIO times over the explicit bound, and says why.
`time.reactions: auto` takes the linear sinks (decay, vessel exchange) implicitly with
imex, whose point is to lift the fast processes out of the dt bound, and explicitly with
the explicit integrator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from solver.backends.lines import chemotaxis_can_be_implicit
from solver.config import TimeConfig
from solver.grid import Grid
from solver.integrators.stability import (
    GridValues,
    StepBound,
    explicit_stability_bound,
    species_rates,
)
from solver.model import Model


@dataclass(frozen=True)
class IntegratorChoice:
    """An integrator and what it takes implicitly, with the dt bound that leaves."""

    name: str  # "explicit" | "imex"
    reason: str
    implicit_sinks: bool
    implicit_diffusion: frozenset[int]
    implicit_chemotaxis: frozenset[int]
    bound: StepBound


# Implicit diffusion is used when it lets dt grow at least this many times.
IMPLICIT_RATIO = 10.0


def choose_implicit_species(rates: list[tuple[float, float]], ratio: float = IMPLICIT_RATIO) -> frozenset[int]:
    """The fastest-diffusing species to solve implicitly, chosen to allow the largest dt.

    Taking the k fastest diffusers implicitly leaves as explicit bound the largest of the
    other species' diffusion rates and every species' non-diffusive rate ("rest"); a set
    is worth it when each chosen species diffuses faster than that rest and dt grows by
    at least `ratio` (otherwise implicit diffusion buys little and costs line solves: the
    default IMPLICIT_RATIO is what `integrator: auto` asks; `integrator: imex` asks only
    that dt grows). Of those, the set with the smallest rest (largest dt) is taken.

    Args:
        rates: per species (diffusion rate, rate of everything else), in 1/time, from
            solver.integrators.stability.species_rates.
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
        worth_it = rates[chosen[-1]][0] > rest and explicit_rate >= ratio * rest
        if worth_it and rest < best_rest:
            best, best_rest = frozenset(chosen), rest
    return best


def integrator_candidates(
    model: Model, grid: Grid, u0: np.ndarray, maps: np.ndarray, systemic0: np.ndarray, time: TimeConfig
) -> dict[str, IntegratorChoice]:
    """Each integrator as this config would run it: implicit sets and dt bound (no reason yet).

    With `time.implicit_chemotaxis`, a chemotactic species whose faces allow it
    (chemotaxis_can_be_implicit) counts its chemotaxis as transport imex can take implicitly.
    """
    out = {}
    values = GridValues(model, grid, u0, maps, systemic0)
    for name in ("explicit", "imex"):
        sinks = time.reactions == "linearly-implicit" or (time.reactions == "auto" and name == "imex")
        rates = species_rates(model, grid, u0, maps, systemic0, sinks, values)
        implicit: frozenset[int] = frozenset()
        chemotactic: frozenset[int] = frozenset()
        if name == "imex":
            eligible = {i for i, sp in enumerate(model.species)
                        if time.implicit_chemotaxis and chemotaxis_can_be_implicit(sp)}
            transport = [(d + (chemo if i in eligible else 0.0), total)
                         for i, (total, _, d, chemo) in enumerate(rates)]
            ratio = IMPLICIT_RATIO if time.integrator == "auto" else 1.0  # imex asked for: any gain
            implicit = choose_implicit_species([(fast, total - fast) for fast, total in transport], ratio)
            chemotactic = frozenset(implicit & eligible)
        bound = explicit_stability_bound(model, grid, u0, maps, systemic0, sinks, implicit, chemotactic, rates=rates)
        out[name] = IntegratorChoice(name, "", sinks, implicit, chemotactic, bound)
    return out


def choose_integrator(candidates: dict[str, IntegratorChoice], time: TimeConfig, names: tuple[str, ...]) -> IntegratorChoice:
    """The configured integrator, or for `auto` imex when it lets dt grow >= IMPLICIT_RATIO x."""
    if time.integrator != "auto":
        return replace(candidates[time.integrator], reason="as configured")
    explicit, imex = candidates["explicit"], candidates["imex"]
    gain = imex.bound.dt / explicit.bound.dt if math.isfinite(explicit.bound.dt) else 1.0
    sinks_pay = imex.implicit_sinks and not explicit.implicit_sinks
    if gain < IMPLICIT_RATIO or not (imex.implicit_diffusion or sinks_pay):
        return replace(explicit, reason=(
            f"no species diffuses fast enough for implicit diffusion to pay (the explicit "
            f"bound {explicit.bound.dt:.3g} is set by {explicit.bound.limited_by})"))
    # implicit diffusion, or only the linear sinks (a stiff uptake such as oxygen's near
    # anoxia, which bounds forward Euler far below what diffusion needs)
    what = [f"the diffusion of {', '.join(names[i] for i in sorted(imex.implicit_diffusion))}"] \
        if imex.implicit_diffusion else []
    what += ["the linear sinks"] if sinks_pay else []
    return replace(imex, reason=(
        f"the {explicit.bound.limited_by} bounds an explicit dt at {explicit.bound.dt:.3g}; with "
        f"{' and '.join(what)} implicit, dt can be {imex.bound.dt:.3g} ({gain:.0f}x), "
        f"set by {imex.bound.limited_by}"))
