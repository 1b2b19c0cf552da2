"""Systemic compartment: dosing schedules and plasma pharmacokinetics (host side, NumPy).

The systemic state of a run is stepped by solver/integrators/systemic.py.

Public API:
    DoseSpec(agent, kind, dose, dose_rate, duration, start, every, count)   (schedule)
    DoseKind                    "bolus" | "infusion"                       (schedule)
    expand_schedule(specs, t_end, allow_overlap=False, *, t_start=0.0) -> Schedule
    Schedule.agents() / .event_times() / .next_event(t)
            .infusion_rate(agent, t) / .boluses_at(agent, t)               (schedule)
    Bolus(time, amount), Infusion(start, stop, rate)                       (schedule)
    PlasmaPK(model, volume, k_el, k12, k21, volume_peripheral, label)      (pk)
            .initial_state() / .advance(state, rate, h) / .apply_bolus(state, amount)
            .concentration(state)
    PKModel                     "one" | "two"                              (pk)
    half_life_to_rate(t_half) -> float                                     (pk)
    integrate_plasma(pk, schedule, agent, t_grid, *, t_start=0.0) -> ndarray (pk)
"""

from __future__ import annotations

from solver.systemic.pk import PKModel, PlasmaPK, half_life_to_rate, integrate_plasma
from solver.systemic.schedule import (
    Bolus,
    DoseKind,
    DoseSpec,
    Infusion,
    Schedule,
    expand_schedule,
)

__all__ = [
    "Bolus",
    "DoseKind",
    "DoseSpec",
    "Infusion",
    "PKModel",
    "PlasmaPK",
    "Schedule",
    "expand_schedule",
    "half_life_to_rate",
    "integrate_plasma",
]
