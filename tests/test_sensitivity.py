"""tumorsim sensitivity (solver/study/sensitivity.py): Sobol indices of a YAML model whose
final state is the Ishigami function of three parameters match the analytic indices within
their confidence intervals; Morris elementary effects of a model linear in its parameters
are exact; the sample is reproducible; bad files are refused in one line.

The model has one cell and one species with a constant rate, u(0) = 0 and one explicit
step to t = 1 (exact for a constant rate), so u(1) is the rate:

    u(1) = 12 + sin x1 + a sin^2 x2 + b x3^4 sin x1,   a = 7, b = 0.1,  x_i ~ U(-pi, pi)

(Ishigami & Homma 1990; the 12 keeps u positive). Its indices (Sobol 2001; Saltelli et al.
2008, section 4.7): V = a^2/8 + b pi^4/5 + b^2 pi^8/18 + 1/2, V1 = (1 + b pi^4/5)^2 / 2,
V2 = a^2/8, V3 = 0, V13 = 8 b^2 pi^8 / 225; S1 = (0.3139, 0.4424, 0), ST = (0.5576, 0.4424,
0.2437).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import yaml

pytest.importorskip("SALib", reason="the `study` extra is not installed")
pytest.importorskip("distributed", reason="the `study` extra is not installed")

from solver import cli
from solver.study.sensitivity import design, load_sensitivity, run_sensitivity

A, B = 7.0, 0.1
_V = A**2 / 8 + B * math.pi**4 / 5 + B**2 * math.pi**8 / 18 + 0.5
_V1 = 0.5 * (1 + B * math.pi**4 / 5) ** 2
_V13 = 8 * B**2 * math.pi**8 / 225
S1 = [_V1 / _V, A**2 / 8 / _V, 0.0]
ST = [(_V1 + _V13) / _V, A**2 / 8 / _V, _V13 / _V]


def one_cell(reaction: str, names: list[str]) -> dict[str, Any]:
    return {
        "name": "one-cell", "backend": "numpy", "precision": "float64",
        "grid": {"shape": [1, 1, 1], "spacing": 1.0},
        "time": {"end": 1.0, "dt": 1.0, "integrator": "explicit", "order": 1},
        "output": {"series_every": 1.0, "snapshot_every": 1.0, "pictures": False},
        "model": {"parameters": dict.fromkeys(names, 0.5),
                  "species": {"u": {"diffusion": 0.0, "reaction": reaction, "initial": 0.0}}},
    }


def ishigami(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "ishigami",
        "base": one_cell("12 + sin(x1) + 7*sin(x2)**2 + 0.1*x3**4*sin(x1)", ["x1", "x2", "x3"]),
        "parameters": {f"x{i}": {"low": -math.pi, "high": math.pi} for i in (1, 2, 3)},
        "samples": 64, "seed": 0, "analyse": ["f"], "outcomes": {"f": {"final": "total_u"}},
    }
    data.update(changes)
    return data


def test_sobol_indices_of_the_ishigami_function_match_within_their_intervals(tmp_path, dask_scheduler) -> None:
    # N = 64 base samples, 64 x (3 + 2) = 320 members; 95 % bootstrap intervals (100 resamples).
    # On the exact function the six analytic indices lay within their intervals for 27 of 30
    # sample seeds; seed 0 is the file's default, not a chosen one.
    result = run_sensitivity(ishigami(), out=tmp_path / "sa", scheduler=dask_scheduler, progress=False)
    assert (result.summary["status"] == "done").all() and len(result.summary) == 320
    d = design(load_sensitivity(ishigami()))
    x = d.values
    exact = 12 + np.sin(x[:, 0]) + A * np.sin(x[:, 1]) ** 2 + B * x[:, 2] ** 4 * np.sin(x[:, 0])
    assert np.allclose(result.summary["f"].to_numpy()[d.member_of_row], exact, rtol=1e-12)
    ix = result.indices.set_index("parameter")
    keys = [f"model.parameters.x{i}" for i in (1, 2, 3)]
    for key, s1, st in zip(keys, S1, ST):
        assert abs(ix.loc[key, "S1"] - s1) <= ix.loc[key, "S1_conf"]
        assert abs(ix.loc[key, "ST"] - st) <= ix.loc[key, "ST_conf"]
        assert ix.loc[key, "S1_conf"] < 0.3 and ix.loc[key, "ST_conf"] < 0.3  # intervals that say something
    # x3 acts only through its interaction with x1: no first-order effect, a total one
    assert ix.loc[keys[2], "ST"] - ix.loc[keys[2], "ST_conf"] > 0
    for name in ("indices.csv", "indices.md", "indices.png", "samples.csv", "summary.csv"):
        assert (tmp_path / "sa" / name).is_file()


def test_morris_effects_of_a_linear_model_are_its_slopes_times_the_ranges(tmp_path, dask_scheduler) -> None:
    # u(1) = 2 x1 - 5 x2 + 0.5 x3: every elementary effect of x_i, per unit of its range, is
    # c_i (high_i - low_i): mu = that, mu* = |that|, sigma = 0.
    sa = {"name": "linear", "base": one_cell("20 + 2*x1 - 5*x2 + 0.5*x3", ["x1", "x2", "x3"]),
          "parameters": {"x1": {"low": 0.0, "high": 1.0}, "x2": {"low": 0.0, "high": 2.0},
                         "x3": {"relative": 0.5}},
          "method": "morris", "samples": 4, "levels": 4, "seed": 3, "analyse": ["f"],
          "outcomes": {"f": {"final": "total_u"}}}
    result = run_sensitivity(sa, out=tmp_path / "morris", scheduler=dask_scheduler, progress=False)
    ix = result.indices.set_index("parameter")
    expected = {"model.parameters.x1": 2.0 * 1.0, "model.parameters.x2": -5.0 * 2.0, "model.parameters.x3": 0.5 * 0.5}
    for key, effect in expected.items():
        assert ix.loc[key, "mu"] == pytest.approx(effect, rel=1e-9)
        assert ix.loc[key, "mu_star"] == pytest.approx(abs(effect), rel=1e-9)
        assert ix.loc[key, "sigma"] == pytest.approx(0.0, abs=1e-9)
    assert len(result.summary) <= 4 * (3 + 1)  # trajectories sharing a point share its member


def test_the_sample_is_reproducible_from_its_seed() -> None:
    first, again = design(load_sensitivity(ishigami(samples=8))), design(load_sensitivity(ishigami(samples=8)))
    other = design(load_sensitivity(ishigami(samples=8, seed=1)))
    assert np.array_equal(first.values, again.values) and not np.array_equal(first.values, other.values)
    assert [m.id for m in first.resolved.members] == [m.id for m in again.resolved.members]
    assert first.values.shape == (8 * 5, 3) and (np.abs(first.values) <= math.pi).all()


@pytest.mark.parametrize(("change", "message"), [
    ({"samples": 48}, "sobol needs a power of 2 samples"),
    ({"parameters": {"x1": {"low": 0.0, "high": 1.0}, "x9": {"low": 0.0, "high": 1.0}}},
     "unknown key 'model.parameters.x9'"),
    ({"analyse": ["g"]}, "analyse: no outcome 'g'"),
    ({"parameters": {"x1": {"low": 0.0}, "x2": {"low": 0.0, "high": 1.0}}}, "needs low < high"),
    ({"method": "fast"}, "method"),
])
def test_bad_sensitivity_files_are_refused_in_one_line(tmp_path, capsys, change, message) -> None:
    path = tmp_path / "sa.yaml"
    path.write_text(yaml.safe_dump(ishigami(**change)), encoding="utf-8")
    assert cli.main(["sensitivity", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tumorsim: error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "out").exists()
