"""The built-in spatial de Pillis 2006 model against the published ODE and closed forms.

ODE limit: uniform fields on one cell of a 1 mL domain (so densities per mL are the
ODE's cell counts, and the tumour's effective volume and the represented volume are
1 mL), w = 1, no-flux faces, fast tissue-plasma exchange (P = 1e6/day, sinks taken
linearly implicitly so P does not bound dt), the paper's one-compartment plasma in its
own units, no uptake, no synergy, no extinction: it must reproduce a stiff Radau solve
of the published ODE for T, N, L, C.
The grid integrator is first order in time: the test checks that the error halves with
dt (observed order 1 +- 0.2) and that the Richardson extrapolation 2 u(dt/2) - u(dt) of
two runs (dt 1e-3 and 5e-4) lies within 3e-3 of the ODE solution.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest

from solver.builtin_models import builtin_model
from solver.config import parse_config
from solver.run import Simulation

scipy_integrate = pytest.importorskip("scipy.integrate")

GAMMA, MU_I = 0.9, 10.0  # 1/day, the paper's plasma eliminations of the drug and IL-2 [dP06]
ONE_ML = 1.0e4  # um: a one-cell grid of 1 cm, a 1 mL domain
_NO_PERIPHERAL = dict.fromkeys(("k12", "k21", "volume_peripheral", "k13", "k31", "volume_peripheral2"))


def ode_model(variant: str = "patient9", parameters: dict | None = None, **species) -> dict:
    """The built-in model as the paper writes it: one-compartment plasma of volume 1 (v_M
    and v_I are concentration rates), M in the paper's units (M_kill = 1), instant
    exchange, no uptake, no synergy, no extinction, every infused CD8 cell in the 1 mL
    domain (homing 1 per mL)."""
    return {
        "builtin": "depillis2006", "variant": variant,
        "parameters": {"P_M": 1e6, "P_I": 1e6, "gamma_tissue": 0.0, "muI_tissue": 0.0, "k_up": 0.0, "M_kill": 1.0,
                       "icd": 0.0, "extinction": 0.0, "homing": 1.0, **(parameters or {})},
        "agents": {"chemo": {"pk": {"model": "one", "volume": 1.0, "k_el": GAMMA, **_NO_PERIPHERAL}},
                   "il2": {"pk": {"model": "one", "volume": 1.0, "k_el": MU_I, **_NO_PERIPHERAL}}},
        "species": species,
    }

T0, N0, L0 = 2e7, 1e5, 1e3
END = 8.0
CHEMO = {"agent": "chemo", "kind": "infusion", "dose_rate": 1.0, "duration": 1.0, "start": 0.0}
IL2 = {"agent": "il2", "kind": "infusion", "dose_rate": 5e5, "duration": 0.5, "start": 2.0, "every": 2.0, "count": 2}
BREAKS = [0.0, 1.0, 2.0, 2.5, 4.0, 4.5, END]


def v_chemo(t: float) -> float:
    return 1.0 if 0.0 <= t < 1.0 else 0.0


def v_il2(t: float) -> float:
    return 5e5 if (2.0 <= t < 2.5 or 4.0 <= t < 4.5) else 0.0


def published_ode(t: float, y: np.ndarray, p: dict, vM: float, vI: float) -> list[float]:
    """de Pillis, Gu & Radunskaya (2006), written as published (float64, no spatial terms)."""
    T, N, L, C, M, I = y
    DT = p["d"] * T * L ** p["l"] / (p["s"] * T ** p["l"] + L ** p["l"])
    kill = 1 - math.exp(-M)
    return [
        p["a"] * T * (1 - p["b"] * T) - p["c"] * N * T - DT - p["K_T"] * kill * T,
        p["e"] * C - p["f"] * N + p["g"] * T**2 / (p["h"] + T**2) * N - p["p"] * N * T - p["K_N"] * kill * N,
        -p["m"] * L + p["j"] * DT**2 / (p["k"] + DT**2) * L - p["q"] * L * T + (p["r1"] * N + p["r2"] * C) * T
        - p["u"] * N * L**2 - p["K_L"] * kill * L + p["pI"] * L * I / (p["gI"] + I),
        p["alpha"] - p["beta"] * C - p["K_C"] * kill * C,
        -GAMMA * M + vM,
        -MU_I * I + vI,
    ]


@lru_cache(maxsize=None)
def reference(variant: str) -> np.ndarray:
    """T, N, L, C at END from Radau, restarted at every dose start/stop (rtol 1e-11)."""
    p = builtin_model("depillis2006", variant)["parameters"]
    y = np.array([T0, N0, L0, p["alpha"] / p["beta"], 0.0, 0.0])
    for a, b in zip(BREAKS, BREAKS[1:]):
        mid = 0.5 * (a + b)
        sol = scipy_integrate.solve_ivp(
            published_ode, (a, b), y, method="Radau", rtol=1e-11, atol=1e-9, args=(p, v_chemo(mid), v_il2(mid))
        )
        assert sol.success
        y = sol.y[:, -1]
    return y[:4]


def ode_limit_config(variant: str, dt: float, **model):
    p = builtin_model("depillis2006", variant)["parameters"]
    return parse_config(
        {
            "name": "ode-limit",
            "backend": "numpy",
            "precision": "float64",
            "grid": {"shape": [1, 1, 1], "spacing": ONE_ML},
            "time": {"end": END, "dt": dt, "reactions": "linearly-implicit"},
            "model": {**ode_model(variant, T={"initial": T0}, N={"initial": N0}, L={"initial": L0}),
                      "systemic": {"C": {"initial": p["alpha"] / p["beta"]}}, **model},
            "treatment": [CHEMO, IL2],
        }
    )


@lru_cache(maxsize=None)
def grid_solution(variant: str, dt: float) -> np.ndarray:
    sim = Simulation(ode_limit_config(variant, dt))
    state = sim.start()
    sim.advance(state, END)
    u = state.backend.to_host(state.fields.u)[:, 0, 0, 0]
    return np.array([u[0], u[1], u[2], state.scalars(END)[0]])


@pytest.mark.parametrize("variant", ["patient9", "patient10"])
def test_ode_limit_reproduces_published_ode(variant: str) -> None:
    ref = reference(variant)
    coarse, fine = grid_solution(variant, 1e-3), grid_solution(variant, 5e-4)
    err_coarse, err_fine = np.abs(coarse / ref - 1), np.abs(fine / ref - 1)
    # first order in time for T, N, L (C is advanced by RK4 with exact plasma: ~1e-14)
    order = np.log2(err_coarse[:3] / err_fine[:3])
    assert np.all(np.abs(order - 1) < 0.2), (err_coarse, err_fine, order)
    # the extrapolation's remainder is second order: measured 2.0e-3 (patient 9, T) and
    # 5e-7 (patient 10) at these steps (5e-4 / 2.5e-4 gave 5e-4 at twice the cost)
    richardson = 2 * fine - coarse
    np.testing.assert_allclose(richardson, ref, rtol=3e-3)
    assert err_fine[3] < 1e-10


def test_tumour_free_equilibrium() -> None:
    # T = L = 0, no drug: C* = alpha/beta, N* = e alpha / (f beta); forward Euler has the
    # same fixed point (also with the linearly implicit sink), reached to ~1e-15 in 1000 days.
    p = builtin_model("depillis2006", "patient9")["parameters"]
    cfg = parse_config(
        {
            "name": "equilibrium", "backend": "numpy", "precision": "float64",
            "grid": {"shape": [1, 1, 1], "spacing": ONE_ML},
            "time": {"end": 1000.0, "reactions": "linearly-implicit"},  # P_M w ~ 2e3/day: stiff
            "model": ode_model(N={"initial": 0.0}),
        }
    )
    sim = Simulation(cfg)
    state = sim.start()
    sim.advance(state, 1000.0)
    C = state.scalars(1000.0)[0]
    N = state.backend.to_host(state.fields.u)[1]
    assert C == pytest.approx(p["alpha"] / p["beta"], rel=1e-12)
    np.testing.assert_allclose(N, p["e"] * p["alpha"] / (p["f"] * p["beta"]), rtol=1e-9)


def test_logistic_growth_without_immune_cells_or_drug() -> None:
    # N = L = 0 and alpha = 0: dT/dt = a T (1 - b T), T = K / (1 + (K/T0 - 1) e^{-a t}).
    # (Linearly implicit reactions: the stiff drug exchange P_M w does not bound dt; T is
    # explicit while it grows, dR/dT > 0.)
    # Forward Euler at dt = 1e-2 is first order: error ~ a^2 dt t / 2 relative; checked
    # against the closed form at two dt (error halves) and bounded at the finer one.
    p = builtin_model("depillis2006", "patient9")["parameters"]
    K, a, t_end, T_start = 1 / p["b"], p["a"], 20.0, 1e6

    def final(dt: float) -> float:
        cfg = parse_config(
            {
                "name": "logistic", "backend": "numpy", "precision": "float64",
                "grid": {"shape": [1, 1, 1], "spacing": ONE_ML},
                "time": {"end": t_end, "dt": dt, "reactions": "linearly-implicit"},
                "model": {**ode_model(parameters={"alpha": 0.0}, T={"initial": T_start}),
                          "systemic": {"C": {"initial": 0.0, "rate": "0"}}},
            }
        )
        return float(Simulation(cfg).evolve()[0].ravel()[0])

    exact = K / (1 + (K / T_start - 1) * math.exp(-a * t_end))
    e1, e2 = abs(final(1e-2) / exact - 1), abs(final(5e-3) / exact - 1)
    assert math.log2(e1 / e2) == pytest.approx(1.0, abs=0.2)
    assert e2 < a * a * 5e-3 * t_end / 2


def test_plasma_levels_follow_pk_closed_forms(tmp_path) -> None:
    # Infusion at rate v from t0 for 1 day: M_p = (v/gamma)(1 - e^{-gamma (t - t0)}), then decay;
    # periodic IL-2 bolus: peak after the n-th dose (D/V)(1 - q^n)/(1 - q), q = e^{-muI tau}.
    p = builtin_model("depillis2006", "patient9")["parameters"]
    cfg = parse_config(
        {
            "name": "pk", "backend": "numpy", "precision": "float64",
            "grid": {"shape": [1, 1, 1], "spacing": ONE_ML},
            "time": {"end": 3.0, "reactions": "linearly-implicit"},
            "output": {"series_every": 0.25, "pictures": False},
            "model": ode_model(),
            "treatment": [
                {"agent": "chemo", "kind": "infusion", "dose_rate": 2.0, "duration": 1.0, "start": 0.5},
                {"agent": "il2", "kind": "bolus", "dose": 1e5, "start": 0.25, "every": 0.25, "count": 8},
            ],
        }
    )
    summary = Simulation(cfg, out_dir=tmp_path / "run").run()
    from solver.io.run_file import load_run

    run = load_run(summary.run_file)
    t = run.series_time
    g, v = GAMMA, 2.0
    on = np.clip(t - 0.5, 0, 1.0)
    expected = (v / g) * (1 - np.exp(-g * on)) * np.exp(-g * np.clip(t - 1.5, 0, None))
    np.testing.assert_allclose(run.series["plasma_chemo"], expected, rtol=1e-12, atol=1e-15)
    q = math.exp(-MU_I * 0.25)
    n = np.clip(np.round(t / 0.25), 0, 8)
    peaks = 1e5 * (1 - q**n) / (1 - q)
    after = t <= 2.0  # records at dose times hold the value just after the bolus
    np.testing.assert_allclose(run.series["plasma_il2"][after], peaks[after], rtol=1e-12)


# ------------------------------------------------------------- a regimen, against Radau
#
