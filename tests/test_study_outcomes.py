"""Member outcomes (solver/study/outcomes.py) on series whose answers are known, the
built-in model's defaults, doses from the schedule, and the Pareto front."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from solver.builtin_models import builtin_model, builtin_outcomes
from solver.config import builtin_config_path, load_config
from solver.model import build_model
from solver.study.outcomes import (
    check_outcomes,
    compute_outcomes,
    pareto_front,
    regrowth_time,
    series_names,
    time_below,
    total_doses,
)
from solver.study.spec import OutcomeSpec, load_study

QUICKSTART = builtin_config_path("quickstart")


def run_with(t: np.ndarray, **series: np.ndarray) -> SimpleNamespace:
    return SimpleNamespace(series_time=t, series=series, path="<test>")


def outcomes(**specs: dict) -> dict[str, OutcomeSpec]:
    return {name: OutcomeSpec.model_validate(spec) for name, spec in specs.items()}


def test_reductions_of_a_burden_that_falls_and_regrows() -> None:
    t = np.linspace(0.0, 4.0, 41)
    x = 10.0 * (1.0 + (t - 2.0) ** 2) / 5.0  # x0 = 10, minimum 2 at t = 2, back at 10 at t = 4
    config = load_config(QUICKSTART)
    got = compute_outcomes(run_with(t, b=x), outcomes(
        final={"final": "b"}, low={"min": "b"}, when={"time_of_min": "b"}, auc={"auc": "b"},
        back={"regrowth": "b"}, nadir={"nadir": "b"}, below={"time_below": "b", "threshold": 0.5, "relative": True},
        cured={"cure": "b", "below": 1.0}, half={"final": "b / 2"}, ratio={"expression": "low / final"},
    ), config)
    assert got["final"] == pytest.approx(10.0) and got["low"] == pytest.approx(2.0)
    assert got["when"] == pytest.approx(2.0)
    exact_auc = 2.0 * (4.0 + 16.0 / 3.0)  # integral of 2 (1 + (t-2)^2) over [0, 4]
    assert got["auc"] == pytest.approx(exact_auc, rel=1e-3)
    assert got["back"] == pytest.approx(4.0)
    assert got["nadir"] == pytest.approx(0.2)
    # below 5: 1 + (t-2)^2 < 2.5, |t - 2| < sqrt(1.5), piecewise-linear between records
    assert got["below"] == pytest.approx(2 * math.sqrt(1.5), abs=0.01)
    assert got["cured"] == 0.0
    assert got["half"] == pytest.approx(5.0) and got["ratio"] == pytest.approx(0.2)


def test_regrowth_and_time_below_edge_cases() -> None:
    t = np.array([0.0, 1.0, 2.0, 3.0])
    assert regrowth_time(t, np.array([1.0, 2.0, 3.0, 4.0])) == 0.0  # never fell
    assert math.isnan(regrowth_time(t, np.array([4.0, 2.0, 1.0, 3.0])))  # not back by the end
    assert regrowth_time(t, np.array([4.0, 2.0, 2.0, 6.0])) == pytest.approx(2.5)
    assert time_below(t, np.array([1.0, -1.0, -1.0, 1.0]), 0.0) == pytest.approx(2.0)
    assert time_below(t, np.array([1.0, 1.0, 1.0, 1.0]), 0.0) == 0.0


def test_a_cure_is_extinction_at_any_record() -> None:
    t = np.array([0.0, 1.0, 2.0])
    specs = outcomes(cured={"cure": "b", "below": 1.0})
    config = load_config(QUICKSTART)
    assert compute_outcomes(run_with(t, b=np.array([5.0, 0.5, 3.0])), specs, config)["cured"] == 1.0
    assert compute_outcomes(run_with(t, b=np.array([5.0, 1.5, 3.0])), specs, config)["cured"] == 0.0


def test_total_doses_follow_the_schedule_and_stop_at_the_end() -> None:
    config = load_config(QUICKSTART, ["treatment[chemo].dose_rate=1.5", "treatment[chemo].duration=2.0",
                                      "time.end=7.0"])
    doses = total_doses(config)
    # the quickstart's IL-2: 9 boluses of 4.2e7 IU every 8 h from day 1, all before day 7
    assert doses == {"chemo": pytest.approx(3.0), "il2": pytest.approx(9 * 4.2e7)}
    late = load_config(QUICKSTART, ["treatment[chemo].start=6.0", "treatment[chemo].duration=2.0"])
    assert total_doses(late)["chemo"] == pytest.approx(36.0 * 1.0)  # the rate for the day up to time.end = 7


def test_the_built_in_defaults_validate_and_name_series_the_model_records() -> None:
    raw = builtin_outcomes("depillis2006")
    assert {"final_burden", "lymphocyte_nadir", "cured", "chemo_dose", "regrowth_day", "nk_nadir"} <= set(raw)
    specs = {name: OutcomeSpec.model_validate(spec) for name, spec in raw.items()}
    check_outcomes(specs, build_model(load_config(QUICKSTART)))  # raises on an unknown series
    assert builtin_outcomes("depillis2006_oxygen") == raw  # inherited through `extends`
    assert "outcomes" not in builtin_model("depillis2006")  # the config's model section is unchanged
    assert specs["final_burden"].better == "lower" and specs["lymphocyte_nadir"].better == "higher"
    assert "tumour_burden" in series_names(build_model(load_config(QUICKSTART)))


def test_a_study_adds_to_the_defaults_and_may_turn_them_off() -> None:
    from solver.study.outcomes import study_outcomes

    spec = load_study({"base": "quickstart", "outcomes": {"final_burden": {"max": "tumour_burden"},
                                                          "mine": {"auc": "cd8_in_tumour"}}}).spec
    merged = study_outcomes(spec, "depillis2006")
    assert merged["final_burden"].kind == "max" and "mine" in merged and "cured" in merged
    only = load_study({"base": "quickstart", "default_outcomes": False, "outcomes": {"m": {"final": "C"}}}).spec
    assert list(study_outcomes(only, "depillis2006")) == ["m"]


def test_the_pareto_front_keeps_the_members_no_other_beats() -> None:
    points = np.array([[1.0, 0.2], [2.0, 0.5], [3.0, 0.4], [0.5, 0.1], [2.0, np.nan], [4.0, 0.9]])
    front = pareto_front(points, ["lower", "higher"])  # low burden, high nadir
    assert front.tolist() == [True, True, False, True, False, True]
    assert pareto_front(points[:4], ["lower", "lower"]).tolist() == [False, False, False, True]
