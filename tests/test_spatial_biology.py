"""The built-in model's spatial biology against the ODE and closed forms (docs/model.md).

- A well-mixed tumour (uniform in a part of the domain, motility off) reproduces the ODE
  patient's clear/escape outcome across tumour sizes: patient 9 from the tumour-free
  immune state clears 7.5e5 and 5e6 cells and lets 2e7 escape (de Pillis et al. 2006;
  the escape is to 9.6e8 cells by day 21 in the ODE). The tumour is dilute (5e7 cells/mL,
  5 % of packing): the spatial model's growth saturates locally at the packing density,
  the ODE's globally at 1/b cells, so a dense tumour grows more slowly than the ODE's.
- Doxorubicin penetration: a planar vessel wall feeding tissue with uptake gives the
  exact discrete exponential profile at steady state, whose decay length is the
  continuum sqrt(D / k); the defaults put the half-penetration distance at 40-100 um
  from vessels in tumour at half packing (Primeau et al., Clin Cancer Res 11 (2005) 8782).
- Extinction: a remnant below one cell is removed, so an eliminated tumour reads 0.
- Grid refinement of a shipped config converges (the same vessels on every grid).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from solver.builtin_models import builtin_model
from solver.config import parse_config
from solver.run import Simulation

P9 = builtin_model("depillis2006", "patient9")["parameters"]
DILUTE = 5.0e7  # cells/mL


def run_until(cfg: dict, times: list[float]) -> tuple[Simulation, list[np.ndarray]]:
    sim = Simulation(parse_config(cfg))
    state = sim.start()
    out = []
    for t in times:
        sim.advance(state, t)
        out.append(np.array(state.fields.u, dtype=np.float64))
    return sim, out


def well_mixed(total: float) -> dict:
    """Tumour of `total` cells at DILUTE density in 2 of 4 cells of a 1 x 4 row, NK cells
    at their tumour-free equilibrium e alpha / (f beta) spread over the domain, no CD8."""
    side_um = (total / DILUTE / 2) ** (1 / 3) * 1e4
    return {
        "name": "well-mixed", "backend": "numpy", "precision": "float64",
        "grid": {"shape": [4, 1, 1], "spacing": side_um},
        # order 2 with error control at rtol 0.005: the burden at day 21 within 0.05 % of
        # rtol 0.0005 (measured), in ~200 steps where auto's explicit takes 49 000
        "time": {"end": 21.0, "integrator": "imex", "order": 2, "rtol": 0.005},
        "output": {"series_every": 21.0, "pictures": False, "checkpoint": None},
        "model": {"builtin": "depillis2006", "variant": "patient9",
                  "parameters": {"D_T": 0.0, "D_N": 0.0, "D_L": 0.0, "chi_K": 0.0},
                  "species": {"T": {"initial": f"{DILUTE} if x < {2 * side_um} else 0"},
                              "N": {"initial": "e*alpha/(beta*f)/(domain_volume*mL_per_um3)"},
                              "L": {"initial": 0.0}}},
    }


@pytest.mark.parametrize(("total", "escapes"), [(7.5e5, False), (5e6, False), (2e7, True)])
def test_a_well_mixed_tumour_clears_or_escapes_as_the_ode_patient(total: float, escapes: bool) -> None:
    sim, (week, end) = run_until(well_mixed(total), [7.0, 21.0])
    cells = [float(u[0].sum()) * sim.grid.cell_volume * 1e-12 for u in (week, end)]
    if escapes:
        # the ODE: 2e7 -> 9.6e8 by day 21; here growth saturates in the tumour's two
        # cells (motility is off), at 2 x packing x their volume = 7.8e8 cells
        assert cells[1] > 10 * total
    else:
        # the ODE clears within a week; extinction then removes the remnant
        assert cells[0] < 1e-3 * total and cells[1] < 1.0


def test_doxorubicin_profile_from_a_planar_vessel_is_the_exact_discrete_exponential() -> None:
    # One vessel-lined cell at x = 0 feeds a 3 mm row of tumour at half packing; at steady
    # state D M'' = (gamma + k_up b V_pack T) M away from the wall, whose discrete solution
    # is M_i ~ r^i with r + 1/r = 2 + k h^2 / D; the linear regime (M << K_up) is that of
    # the built-in reaction, whose saturation is switched off here by K_up = 1e12.
    h, n = 5.0, 600
    k = P9["k_up"] * 0.5 + P9["gamma_tissue"]
    cfg = {
        "name": "slab", "backend": "numpy", "precision": "float64",
        "grid": {"shape": [n, 1, 1], "spacing": h},
        "time": {"end": 0.05, "integrator": "explicit"},
        "output": {"series_every": 0.05, "pictures": False, "checkpoint": None},
        "model": {"parameters": {"D_M": P9["D_M"], "k": k, "P": 1.0e5, "c": 1.0e-3},
                  "maps": {"w": f"1 if x < {h} else 0"},
                  "species": {"M": {"diffusion": "D_M", "reaction": "P*w*(c - M) - k*M", "initial": 0.0}}},
    }
    _, (u,) = run_until(cfg, [0.05])
    m = u[0].reshape(-1)
    r = 1 + k * h * h / (2 * P9["D_M"]) - math.sqrt((1 + k * h * h / (2 * P9["D_M"])) ** 2 - 1)
    # with the no-flux far face the solution is M_i ~ r^i + c r^(-i), c ~ r^(2n); for
    # i < 150 of 600 the r^(-i) mode is below r^(2 (n - i)) ~ 1e-19 of the r^i one
    ratios = m[2:150] / m[1:149]
    assert np.abs(ratios - r).max() < 1e-9
    decay = -h / math.log(r)
    assert decay == pytest.approx(math.sqrt(P9["D_M"] / k), rel=1e-3)  # continuum length, O((h/len)^2)


def test_default_doxorubicin_half_penetration_is_40_to_100_um() -> None:
    # The built-in model's linearised sink of M in tumour at half packing, read from its
    # own reaction (so the check follows the model file, not a copy of its numbers).
    import sympy as sp

    from solver.model import build_model

    model = build_model(parse_config({"name": "m", "grid": {"shape": [1, 1, 1], "spacing": 10.0},
                                      "time": {"end": 1.0}, "model": {"builtin": "depillis2006"}}))
    m = next(s for s in model.species if s.name == "M")
    T = next(s.symbol for s in model.species if s.name == "T")
    half_packing = 0.5 / (P9["b"] * P9["V_pack"])
    sink = -sp.diff(m.reaction, m.symbol).subs({sp.Symbol("w", real=True): 0, T: half_packing, m.symbol: 0})
    distance = math.log(2) * math.sqrt(m.diffusion / float(sink))
    assert 40.0 <= distance <= 100.0


def test_grid_refinement_of_a_shipped_config_converges() -> None:
    # configs/chemoimmuno.yaml on 8^3, 16^3 and 32^3 cells of the same 2.4 mm domain (the
    # vessel map is physical: the same vessels on every grid), day 0.25 after the first
    # doxorubicin dose; block-averaged fields compared pairwise. The scheme's order is 2
    # for diffusion and reactions and 1 for the upwind chemotaxis of N and L: differences
    # must shrink at least at order 1. Measured at day 0.5 (benchmarks/grid_refinement.py,
    # benchmarks/RESULTS.md): 8/16/32 T 2.65, N 2.32, L 2.16, K 2.14, M 1.48, burden 3.6;
    # 16/32/64 T 1.76, N 2.14, L 0.74, K 1.51, M 1.31, burden 1.14.
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "grid_refinement.py"
    spec = importlib.util.spec_from_file_location("grid_refinement", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = path.parent.parent / "configs" / "chemoimmuno.yaml"
    runs = {n: module.run(config, n, 16, 0.25, 0.05) for n in (8, 16, 32)}
    names = runs[8][2]
    scale = np.abs(runs[32][0]).reshape(len(names), -1).max(axis=1)
    pairs = [np.abs(runs[8][0] - module.block(runs[16][0], 2)),
             np.abs(module.block(runs[16][0], 2) - module.block(runs[32][0], 4))]
    e1, e2 = (d.reshape(len(names), -1).max(axis=1) / np.where(scale > 0, scale, 1.0) for d in pairs)
    for s in ("T", "N", "L", "K", "M"):
        i = names.index(s)
        assert 0 < e2[i] < e1[i] / 2, (s, e1[i], e2[i])
    b = [runs[n][1] for n in (8, 16, 32)]
    assert abs(b[1] - b[2]) < abs(b[0] - b[1]) / 2
