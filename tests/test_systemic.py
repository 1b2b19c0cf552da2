"""Tests of solver.systemic: dosing schedules and exact plasma PK updates.

The PK updates are exact solutions of linear ODEs with piecewise-constant input, so
closed forms are matched to round-off (rel 1e-12, a few hundred ulps of float64
accumulated over at most ~100 steps); only the comparison with a numerical ODE
solver is limited by that solver's own tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
from scipy.integrate import solve_ivp

from solver.errors import ConfigError
from solver.systemic import (
    DoseSpec,
    PlasmaPK,
    expand_schedule,
    half_life_to_rate,
    integrate_plasma,
)

ROUNDOFF_RTOL = 1e-12  # exact updates: the only error is float64 round-off


def bolus(agent: str, dose: float, start: float = 0.0, every=None, count: int = 1) -> DoseSpec:
    return DoseSpec(agent=agent, kind="bolus", dose=dose, start=start, every=every, count=count)


def infusion(agent, rate, duration, start=0.0, every=None, count=1) -> DoseSpec:
    return DoseSpec(
        agent=agent,
        kind="infusion",
        dose_rate=rate,
        duration=duration,
        start=start,
        every=every,
        count=count,
    )


TWO_COMPARTMENT = PlasmaPK(
    model="two", volume=3.0, k_el=0.35, k12=0.8, k21=0.15, volume_peripheral=12.0
)


# --------------------------------------------------------------------------- PK closed forms


@pytest.mark.parametrize("volume", [1.0, 2.5])
def test_infusion_matches_closed_form_then_decays(volume: float) -> None:
    # DESIGN 5: infusion at rate v from t0, M = (v / gamma)(1 - exp(-gamma (t - t0)))
    # (divided by V for V != 1), then exponential decay once it stops at t1.
    gamma, v, t0, t1 = 0.9, 2.0, 1.0, 4.0
    pk = PlasmaPK(model="one", volume=volume, k_el=gamma)
    sched = expand_schedule([infusion("chemo", v, t1 - t0, start=t0)], t_end=20.0)
    t = np.array([0.0, 0.5, 1.0, 1.3, 2.0, 3.999, 4.0, 4.7, 9.0, 19.0])
    m1 = v / (volume * gamma) * (1 - math.exp(-gamma * (t1 - t0)))
    expected = np.where(
        t < t0,
        0.0,
        np.where(
            t < t1,
            v / (volume * gamma) * (1 - np.exp(-gamma * (t - t0))),
            m1 * np.exp(-gamma * (t - t1)),
        ),
    )
    got = integrate_plasma(pk, sched, "chemo", t)
    np.testing.assert_allclose(got, expected, rtol=ROUNDOFF_RTOL, atol=0.0)


def test_result_does_not_depend_on_report_grid() -> None:
    # The update is exact, so stepping through 2000 report times or 3 gives the same
    # values up to round-off; a truncation error would show up as an O(h) difference.
    pk = PlasmaPK(model="one", volume=1.7, k_el=0.6)
    sched = expand_schedule(
        [infusion("m", 1.2, 0.75, start=0.25, every=2.0, count=4), bolus("m", 3.0, 1.5)],
        t_end=10.0,
    )
    coarse = np.array([1.0, 4.6, 9.9])
    fine = np.union1d(np.linspace(0.0, 9.9, 2000), coarse)
    got_fine = integrate_plasma(pk, sched, "m", fine)[np.searchsorted(fine, coarse)]
    got_coarse = integrate_plasma(pk, sched, "m", coarse)
    np.testing.assert_allclose(got_fine, got_coarse, rtol=ROUNDOFF_RTOL)


def test_one_compartment_without_elimination_accumulates_linearly() -> None:
    # k = 0 branch: X = R (t - t0) / V exactly, with no 0/0 from the k > 0 formula.
    pk = PlasmaPK(model="one", volume=4.0, k_el=0.0)
    sched = expand_schedule([infusion("x", 2.0, 5.0, start=1.0)], t_end=10.0)
    got = integrate_plasma(pk, sched, "x", [0.5, 3.0, 6.0, 9.0])
    np.testing.assert_allclose(got, [0.0, 1.0, 2.5, 2.5], rtol=ROUNDOFF_RTOL, atol=0.0)


def test_periodic_bolus_peaks_follow_geometric_sum() -> None:
    # Peak just after dose n (value reported after the bolus):
    #   (D/V)(1 - q^n)/(1 - q),  q = exp(-k tau),  -> steady state (D/V)/(1 - q).
    dose, volume, k, tau, n = 5.0, 2.0, 0.4, 1.5, 25
    pk = PlasmaPK(model="one", volume=volume, k_el=k)
    sched = expand_schedule([bolus("il2", dose, 0.0, every=tau, count=n)], t_end=n * tau)
    q = math.exp(-k * tau)
    doses = np.arange(1, n + 1)
    t_peaks = (doses - 1) * tau
    peaks = integrate_plasma(pk, sched, "il2", t_peaks)
    expected = dose / volume * (1 - q**doses) / (1 - q)
    np.testing.assert_allclose(peaks, expected, rtol=ROUNDOFF_RTOL)
    steady = dose / volume / (1 - q)
    # Approach from below, with the gap shrinking exactly as q^n.
    assert np.all(peaks < steady)
    np.testing.assert_allclose((steady - peaks) / steady, q**doses, rtol=1e-9)  # cancellation
    # Just before dose n the trough is the previous peak times q.
    troughs = integrate_plasma(pk, sched, "il2", t_peaks[1:] - 1e-9 * tau)
    np.testing.assert_allclose(troughs, peaks[:-1] * q, rtol=1e-8)  # 1e-9 tau of extra decay


def test_half_life_halves_concentration() -> None:
    t_half = 22.0  # anti-PD-1 plasma half-life, days (DESIGN 2)
    pk = PlasmaPK(model="one", volume=3.0, k_el=half_life_to_rate(t_half))
    sched = expand_schedule([bolus("pd1", 200.0)], t_end=100.0)
    c = integrate_plasma(pk, sched, "pd1", [0.0, t_half, 2 * t_half])
    np.testing.assert_allclose(c / c[0], [1.0, 0.5, 0.25], rtol=ROUNDOFF_RTOL)
    assert half_life_to_rate(math.inf) == 0.0


@pytest.mark.parametrize("h", [1e-9, 0.3, 7.0, 200.0])
@pytest.mark.parametrize("k_el", [0.35, 0.0])
def test_two_compartment_step_equals_matrix_exponential(h: float, k_el: float) -> None:
    # One exact step against scipy's expm of the augmented system d/dt [x; 1] = [[A, b], [0, 0]].
    v1, v2, k12, k21, rate = 3.0, 12.0, 0.8, 0.15, 2.5
    pk = PlasmaPK(model="two", volume=v1, k_el=k_el, k12=k12, k21=k21, volume_peripheral=v2)
    aug = np.zeros((3, 3))
    aug[:2, :2] = [[-(k_el + k12), k21 * v2 / v1], [k12 * v1 / v2, -k21]]
    aug[0, 2] = rate / v1
    x0 = np.array([1.3, 0.4])
    expected = (scipy.linalg.expm(h * aug) @ np.append(x0, 1.0))[:2]
    np.testing.assert_allclose(pk.advance(x0, rate, h), expected, rtol=ROUNDOFF_RTOL)


@pytest.mark.parametrize("h", [1e-9, 1.0 / 24, 1.0, 21.0])
def test_three_compartment_step_equals_matrix_exponential(h: float) -> None:
    # Doxorubicin's disposition (the built-in model's rates, per day, volumes in L), one
    # exact step against scipy's expm of the augmented system, bolus state and infusion.
    v1, v2, v3 = 32.2, 3810.0, 705.0
    k10, k12, k21, k13, k31, rate = 1409 / v1, 859 / v1, 859 / v2, 1562 / v1, 1562 / v3, 100.0
    pk = PlasmaPK(model="three", volume=v1, k_el=k10, k12=k12, k21=k21, volume_peripheral=v2,
                  k13=k13, k31=k31, volume_peripheral2=v3)
    aug = np.zeros((4, 4))
    aug[:3, :3] = [[-(k10 + k12 + k13), k21 * v2 / v1, k31 * v3 / v1],
                   [k12 * v1 / v2, -k21, 0.0], [k13 * v1 / v3, 0.0, -k31]]
    aug[0, 3] = rate / v1
    x0 = pk.apply_bolus(pk.initial_state(), 108.0)  # 60 mg/m^2 at 1.8 m^2
    expected = (scipy.linalg.expm(h * aug) @ np.append(x0, 1.0))[:3]
    # the eigendecomposition of rates spanning 0.2-120 /day loses a few digits more than
    # the 2 x 2 closed form: relative to the largest component
    np.testing.assert_allclose(pk.advance(x0, rate, h), expected, rtol=0, atol=1e-12 * np.abs(expected).max())


def test_three_compartment_without_elimination_conserves_amount() -> None:
    pk = PlasmaPK(model="three", volume=2.0, k_el=0.0, k12=0.5, k21=0.05, volume_peripheral=8.0,
                  k13=2.0, k31=0.4, volume_peripheral2=3.0)
    x = pk.advance(pk.apply_bolus(pk.initial_state(), 6.0), 1.5, 10.0)
    assert 2.0 * x[0] + 8.0 * x[1] + 3.0 * x[2] == pytest.approx(6.0 + 15.0, rel=1e-12)


def test_two_compartment_without_elimination_conserves_amount() -> None:
    # With k10 = 0 the amount V1 X1 + V2 X2 equals everything dosed so far.
    pk = PlasmaPK(model="two", volume=2.0, k_el=0.0, k12=0.5, k21=0.05, volume_peripheral=8.0)
    x = pk.apply_bolus(pk.initial_state(), 6.0)
    x = pk.advance(x, 1.5, 10.0)
    assert 2.0 * x[0] + 8.0 * x[1] == pytest.approx(6.0 + 15.0, rel=ROUNDOFF_RTOL)


def test_two_compartment_matches_radau() -> None:
    pk = TWO_COMPARTMENT
    v1, v2 = pk.volume, pk.volume_peripheral
    a = np.array([[-(pk.k_el + pk.k12), pk.k21 * v2 / v1], [pk.k12 * v1 / v2, -pk.k21]])
    sched = expand_schedule(
        [
            infusion("drug", 3.0, 2.0, start=0.5, every=5.0, count=3),
            bolus("drug", 10.0, start=1.0, every=4.0, count=4),
        ],
        t_end=20.0,
    )
    t_grid = np.linspace(0.0, 19.5, 40)
    got = integrate_plasma(pk, sched, "drug", t_grid)

    # Reference: Radau piece by piece between dose times (a jump in the input or the
    # state inside one solve would cost the solver its order); boluses as jumps.
    x, t, ref = np.zeros(2), 0.0, {}
    stops = sorted(set(sched.event_times()) | set(t_grid.tolist()))
    for s in stops:
        if s > t:
            b = np.array([sched.infusion_rate("drug", t) / v1, 0.0])
            sol = solve_ivp(
                lambda _t, y, b=b: a @ y + b,
                (t, s),
                x,
                method="Radau",
                rtol=1e-10,
                atol=1e-14,
                jac=a,
            )
            x, t = sol.y[:, -1], s
        x = x + np.array([sched.boluses_at("drug", s) / v1, 0.0])
        ref[s] = x[0]
    expected = np.array([ref[s] for s in t_grid])
    assert np.all(expected[t_grid > 1.0] > 0.1)  # the comparison is on non-trivial values
    np.testing.assert_allclose(got, expected, rtol=1e-7)  # Radau at rtol 1e-10 over ~50 pieces


# --------------------------------------------------------------------------- schedules


def test_event_times_sorted_unique_and_complete() -> None:
    sched = expand_schedule(
        [
            infusion("chemo", 1.0, 1.0, start=0.0, every=21.0, count=2),
            bolus("il2", 5e5, start=8.0, every=0.5, count=6),
            bolus("chemo", 2.0, start=1.0),  # same time as an infusion stop
        ],
        t_end=42.0,
    )
    expected = [0.0, 1.0, 8.0, 8.5, 9.0, 9.5, 10.0, 10.5, 21.0, 22.0]
    assert list(sched.event_times()) == expected
    assert sched.agents() == ("chemo", "il2")
    assert sched.next_event(8.0) == 8.5
    assert sched.next_event(21.5) == 22.0
    assert sched.next_event(22.0) is None


def test_infusion_rate_is_on_over_half_open_interval() -> None:
    sched = expand_schedule([infusion("m", 2.5, 1.0, start=3.0, every=4.0, count=2)], t_end=10.0)
    eps = 1e-9
    cases = {0.0: 0.0, 3.0 - eps: 0.0, 3.0: 2.5, 4.0 - eps: 2.5, 4.0: 0.0, 7.0: 2.5, 8.0: 0.0}
    assert {t: sched.infusion_rate("m", t) for t in cases} == cases
    assert sched.infusion_rate("other", 3.5) == 0.0


def test_back_to_back_infusions_leave_no_gap_or_sliver() -> None:
    # start + k*every + duration and start + (k+1)*every differ by an ulp for every = 0.1;
    # merged, they give one event per boundary and a constant rate with no double count.
    sched = expand_schedule([infusion("m", 1.0, 0.1, start=0.0, every=0.1, count=30)], t_end=5.0)
    times = np.array(sched.event_times())
    assert len(times) == 31
    assert np.min(np.diff(times)) > 0.09
    probe = np.linspace(0.0, 3.0, 3001)[:-1]
    assert all(sched.infusion_rate("m", t) == 1.0 for t in probe)
    assert sched.infusion_rate("m", times[-1]) == 0.0


def test_overlapping_infusions_add_when_allowed() -> None:
    specs = [infusion("m", 1.0, 2.0, start=0.0), infusion("m", 0.5, 2.0, start=1.0)]
    sched = expand_schedule(specs, t_end=5.0, allow_overlap=True)
    assert [sched.infusion_rate("m", t) for t in (0.5, 1.5, 2.5, 3.0)] == [1.0, 1.5, 0.5, 0.0]
    # Different agents may overlap without permission.
    expand_schedule([infusion("a", 1.0, 2.0), infusion("b", 1.0, 2.0)], t_end=5.0)


def test_boluses_at_sums_within_tolerance_only() -> None:
    sched = expand_schedule(
        [bolus("x", 2.0, start=0.3, every=0.1, count=3), bolus("x", 1.0, start=0.5)],
        t_end=1.0,
    )
    assert sched.boluses_at("x", 0.5) == 3.0  # 0.3 + 2 * 0.1 == 0.5 up to an ulp
    assert sched.boluses_at("x", 0.5 * (1 + 1e-14)) == 3.0
    assert sched.boluses_at("x", 0.5 + 1e-9) == 0.0
    assert sched.boluses_at("y", 0.5) == 0.0


BAD_SCHEDULES = [
    (
        [bolus("chemo", 1.0), bolus("il2", -5.0)],
        "treatment[1] (agent il2): dose must be > 0, got -5.0",
    ),
    ([bolus("il2", 0.0)], "treatment[0] (agent il2): dose must be > 0"),
    ([bolus("il2", math.nan)], "treatment[0] (agent il2): dose must be > 0"),
    ([infusion("chemo", 0.0, 1.0)], "treatment[0] (agent chemo): dose_rate must be > 0"),
    ([infusion("chemo", 1.0, 0.0)], "treatment[0] (agent chemo): duration must be > 0"),
    ([infusion("chemo", 1.0, -2.0)], "treatment[0] (agent chemo): duration must be > 0"),
    ([bolus("il2", 1.0, count=0)], "treatment[0] (agent il2): count must be an integer >= 1"),
    ([bolus("il2", 1.0, count=2.0)], "treatment[0] (agent il2): count must be an integer >= 1"),
    ([bolus("il2", 1.0, every=0.0, count=3)], "treatment[0] (agent il2): every must be > 0"),
    ([bolus("il2", 1.0, every=-1.0, count=3)], "treatment[0] (agent il2): every must be > 0"),
    ([bolus("il2", 1.0, count=3)], "treatment[0] (agent il2): every is required when count > 1"),
    (
        [
            bolus("il2", 1.0),
            infusion("chemo", 1.0, 2.0, start=1.0),
            infusion("chemo", 1.0, 2.0, 2.0),
        ],
        "treatment[2] (agent chemo): infusion [2, 4) overlaps infusion [1, 3) of treatment[1]",
    ),
    (
        [bolus("chemo", 4.0, start=0.0, every=21.0, count=4)],
        (
            "treatment[0] (agent chemo): dose 4 at t=63 is at or after the end time 50; "
            "lower count or raise time.end"
        ),
    ),
    (
        [bolus("chemo", 4.0, start=50.0)],
        "treatment[0] (agent chemo): dose 1 at t=50 is at or after",
    ),
    ([bolus("chemo", 4.0, start=-1.0)], "treatment[0] (agent chemo): dose 1 at t=-1 is before"),
    (
        [infusion("chemo", 1.0, 3.0, every=2.0, count=2)],
        "treatment[0] (agent chemo): infusion duration 3 is longer than every 2",
    ),
    (
        [DoseSpec(agent="il2", kind="pulse", dose=1.0)],
        "treatment[0] (agent il2): unknown kind 'pulse'; expected one of: bolus, infusion",
    ),
    (
        [DoseSpec(agent="il2", kind="bolus", dose=1.0, duration=1.0)],
        "treatment[0] (agent il2): dose_rate and duration apply to infusions",
    ),
    (
        [DoseSpec(agent="m", kind="infusion", dose=1.0, dose_rate=1.0, duration=1.0)],
        "treatment[0] (agent m): an infusion takes dose_rate and duration, not dose",
    ),
    (
        [DoseSpec(agent="m", kind="infusion", duration=1.0)],
        "treatment[0] (agent m): infusion needs dose_rate",
    ),
]


@pytest.mark.parametrize(("specs", "message"), BAD_SCHEDULES)
def test_bad_schedule_raises_one_line_config_error(specs: list[DoseSpec], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        expand_schedule(specs, t_end=50.0)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(message)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "four", "k_el": 1.0}, "pk: unknown model 'four'; expected one of: one, two, three"),
        ({"volume": 0.0, "k_el": 1.0}, "pk: volume must be a finite number > 0"),
        ({"k_el": -0.1}, "pk: k_el must be a finite number >= 0"),
        ({"k_el": 1.0, "k12": 0.3}, "pk: k12, k21, volume_peripheral (and k13, k31, volume_peripheral2) apply to "
                                    "models 'two' and 'three' only"),
        ({"model": "two", "k_el": 1.0, "k12": 0.3, "k21": 0.1, "volume_peripheral": 2.0, "k13": 1.0},
         "pk: k13, k31 and volume_peripheral2 apply to model 'three' only"),
        ({"model": "three", "k_el": 1.0, "k12": 0.3, "k21": 0.1, "volume_peripheral": 2.0},
         "pk: k13 must be a finite number > 0"),
        ({"model": "two", "k_el": 1.0, "k12": 0.3, "k21": 0.1}, "pk: volume_peripheral must be"),
        ({"model": "two", "k_el": 1.0, "k21": 0.1, "volume_peripheral": 2.0}, "pk: k12 must be"),
    ],
)
def test_bad_pk_parameters_raise_config_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        PlasmaPK(**kwargs)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(message)
