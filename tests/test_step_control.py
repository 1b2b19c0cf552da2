"""Step-size control (`time.max_change`) and `time.integrator: auto`."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from _support import make_config

from solver.config import load_config
from solver.errors import SimulationError
from solver.integrators.systemic import SystemicRuntime
from solver.package_data import data_dir
from solver.run import Simulation


def quickstart(**time):
    cfg = load_config(data_dir("configs") / "quickstart.yaml")
    return cfg.replace(time=cfg.time.model_copy(update=time))


def relative_change(old: np.ndarray, new: np.ndarray) -> float:
    """What the control bounds, recomputed here in float64 (see ExplicitIntegrator.relative_change)."""
    old, new = old.astype(np.float64), new.astype(np.float64)
    scale = np.abs(old).max()
    return float(np.max(np.abs(new - old) / (np.abs(old) + 1e-3 * scale))) if scale > 0 else 0.0


def test_every_accepted_step_respects_max_change_and_lands_on_doses_and_records() -> None:
    max_change = 0.05
    sim = Simulation(quickstart(integrator="imex", max_change=max_change))
    controlled = [i for i in range(len(sim.model.species)) if i not in sim.plan.integrator.implicit_diffusion]
    # imex takes every diffusing species implicitly (the cells' motility and chemotaxis,
    # the drugs, the chemokine): the explicit part the control bounds is the tumour
    assert [sim.model.names[i] for i in controlled] == ["T"]
    state = sim.start()
    ends, worst = [], 0.0

    def after_step(fields) -> bool:  # fields.u_new holds the state before the step
        nonlocal worst
        ends.append(fields.t)
        worst = max(worst, *(relative_change(fields.u_new[i], fields.u[i]) for i in controlled))
        return False

    for t in sim.plan.events:
        if t <= 3.0:
            sim.advance(state, t, after_step)
    f = state.fields
    assert f.rejected > 0  # the control did act
    # float32 fields: the kernel's and this float64 recomputation differ by rounding only
    assert worst <= max_change * (1 + 1e-5), worst
    step_ends = set(ends)
    assert {1.0, 2.0, 3.0} <= step_ends  # dose times (boluses and infusion stops)
    assert all(t in step_ends for t in sim.plan.events if 0 < t <= 3.0)  # every record
    dt = np.diff(sorted(step_ends))
    assert dt.max() <= sim.plan.dt * (1 + 1e-12) and dt.min() < sim.plan.dt / 4


def test_rejected_steps_leave_the_systemic_state_untouched() -> None:
    # Plasma PK is exact for any step sequence; a rejected step that advanced it without
    # restoring it would show here as a plasma level ahead of the one-go solution.
    sim = Simulation(quickstart(integrator="imex", max_change=0.05))
    state = sim.start()
    sim.advance(state, 2.5)
    assert state.fields.rejected > 0
    ref = SystemicRuntime(sim.model)
    ref.apply_boluses(0.0)
    t = 0.0
    for event in [*sim.dose_times(2.5), 2.5]:
        if event > t:
            ref.advance(t, event - t)
            t = event
            ref.apply_boluses(t)
    # the plasma compartments (exact solution, any steps); the systemic ODEs are RK4, whose
    # (tiny) error depends on the steps
    assert state.systemic.pk_state.keys() == ref.pk_state.keys()
    for agent, compartments in ref.pk_state.items():
        np.testing.assert_allclose(state.systemic.pk_state[agent], compartments, rtol=1e-10)


def test_controlled_ode_decay_is_more_accurate_than_equal_steps() -> None:
    # u' = -k u with forward Euler: equal steps at the bound's 0.9 change u by 90 % per
    # step; max_change 0.05 halves them to <= 5 % and lands within first-order accuracy.
    k, end = 10.0, 1.0
    errors = {}
    for max_change in (None, 0.05):
        cfg = make_config({"u": {"reaction": f"-{k}*u", "initial": 1.0}}, shape=(1, 1, 1), end=end,
                          max_change=max_change)
        sim = Simulation(cfg)
        state = sim.start()
        sim.advance(state, end)
        errors[max_change] = abs(state.fields.u[0].item() / np.exp(-k * end) - 1.0)
        if max_change is not None:
            assert state.fields.rejected >= 4  # 0.09 -> 0.0045: at least four halvings
    # forward Euler's relative error over the run is about k^2 h t / 2: 0.14 at the step
    # 0.09 / 32 = 0.0028 the control settles on (measured 0.133, in 356 steps); equal steps
    # of 0.09 multiply u by 0.1 per step and miss exp(-10) entirely (measured 0.99999)
    assert errors[0.05] < 0.2 and errors[None] > 0.99


def test_auto_picks_imex_for_a_fast_diffuser_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    species = {"drug": {"diffusion": 100.0, "reaction": "-0.1*drug", "initial": 1.0},
               "cells": {"diffusion": 0.01, "reaction": "0.5*cells*(1 - cells) - drug*cells", "initial": 0.5}}
    with caplog.at_level(logging.INFO, logger="solver.run.plan"):
        sim = Simulation(make_config(species, shape=(8, 8, 8), integrator="auto"))
    assert sim.plan.integrator.name == "imex" and sim.plan.integrator.implicit_diffusion == frozenset({0})
    message = next(r.getMessage() for r in caplog.records if "integrator auto" in r.getMessage())
    # reactions: auto takes the drug's decay implicitly with imex, and the message says so
    assert "integrator auto: imex, the diffusion of drug" in message
    assert "with the diffusion of drug and the linear sinks implicit" in message


def test_auto_stays_explicit_when_nothing_diffuses_fast(caplog: pytest.LogCaptureFixture) -> None:
    # growth at rate 3 (explicit in any case) outpaces diffusion (rate 0.6): nothing to gain
    species = {"a": {"diffusion": 0.1, "reaction": "3*a*(1 - a/10)", "initial": 1.0},
               "b": {"diffusion": 0.1, "reaction": "a - b", "initial": 0.5}}
    with caplog.at_level(logging.INFO, logger="solver.run.plan"):
        sim = Simulation(make_config(species, shape=(8, 8, 8), integrator="auto"))
    assert sim.plan.integrator.name == "explicit" and sim.plan.max_change is None
    assert any("integrator auto: explicit, no species diffuses fast enough" in r.getMessage() for r in caplog.records)


def test_a_step_that_cannot_be_made_small_enough_is_named() -> None:
    # u' = 1 + u^2 reaches infinity at t = pi/2: near it no step keeps the change small
    cfg = make_config({"u": {"reaction": "1 + u**2", "initial": 0.0}}, shape=(1, 1, 1), end=2.0,
                      max_change=0.05, safety=0.5)
    with pytest.raises(SimulationError, match=r"^(step-size control: u changes by|species u became NaN)"):
        Simulation(cfg).evolve()


def test_the_blow_up_guard_measures_round_off_against_the_run_peak() -> None:
    # An undershoot a few ulp of the species' largest value so far is round-off even when
    # the field has since decayed to almost nothing (an implicit solve's round-off there);
    # one of the field's own size is a blow-up and is named.
    sim = Simulation(make_config({"u": {"diffusion": 1.0, "initial": 1.0}}, shape=(4, 4, 4), end=1.0))
    state = sim.start()
    integrator, fields = state.integrator, state.fields
    integrator.check(fields)  # the guard has seen u = 1
    fields.u[0] = 1e-20
    fields.u[0, 0, 0, 0] = -1e-20  # ~1e-20 of the peak: far below float64 round-off of 1
    integrator.check(fields)
    assert fields.peak[0] == 1.0
    fields.u[0, 0, 0, 0] = -1e-3
    with pytest.raises(SimulationError, match=r"species u went negative \(-0.001\) at cell \(0, 0, 0\)"):
        integrator.check(fields)


@pytest.mark.parametrize("order", [1, 2])
def test_a_blow_up_through_the_python_api_raises(order: int) -> None:
    # u' = u^2 from u = 1 reaches infinity at t = 1; steps of 0.4 (the stability bound at
    # t = 0 is 0.5) square their way to overflow in about 13 steps: far fewer than
    # output.check_every (50) and no record on the way, so only the guard that advance
    # runs where it stops can see it.
    cfg = make_config({"u": {"reaction": "u**2", "initial": 1.0}}, shape=(2, 2, 2), end=10.0,
                      dt=0.4, order=order, rtol=None)
    sim = Simulation(cfg)
    state = sim.start()
    with pytest.raises(SimulationError, match=r"^species u became (NaN|infinite)"):
        sim.advance(state, 8.0)
    assert state.fields.step < 50
