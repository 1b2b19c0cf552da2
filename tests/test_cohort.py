"""Virtual cohorts (solver/study/cohort.py): patients reproducible from their seed and
log-normal around the variant they are drawn from, both published patients alternating,
every regimen run for the same patients, response rates and intervals from a summary,
statistics over a cohort, and an optimisation over a cohort telling its mean."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed", reason="the `study` extra is not installed")

from solver.study import resolve_study
from solver.study.cohort import aggregate, response_table, sample_cohort, wilson_interval
from solver.study.spec import CohortSpec


def cohort_study(**cohort: Any) -> dict[str, Any]:
    spec = {"size": 4, "seed": 11, "around": ["patient9", "patient10"], "parameters": {"a": 0.2, "d": 0.4}}
    spec.update(cohort)
    return {"name": "cohort", "base": "quickstart", "set": {"grid.shape": [4, 4, 4], "backend": "numpy"},
            "vary": {"treatment[chemo].dose_rate": {"values": [1.0, 3.0]}}, "cohort": spec}


def test_the_same_seed_gives_the_same_patients_and_another_seed_others() -> None:
    medians = {"patient9": {"a": 0.431, "d": 2.34}, "patient10": {"a": 0.431, "d": 1.88}}
    spec = CohortSpec(size=5, seed=3, around=["patient9", "patient10"], parameters=["a", "d"])
    assert sample_cohort(spec, medians) == sample_cohort(spec, medians)
    other = sample_cohort(spec.model_copy(update={"seed": 4}), medians)
    assert all(p.values != q.values for p, q in zip(sample_cohort(spec, medians), other))
    assert [p.variant for p in sample_cohort(spec, medians)] == ["patient9", "patient10"] * 2 + ["patient9"]


def test_patients_are_log_normal_around_their_variant() -> None:
    # 4000 patients: the mean of log(value / median) within 4 standard errors of 0, its
    # standard deviation within 4 standard errors of sigma (se of an sd: sigma / sqrt(2n)).
    medians = {"patient9": {"a": 0.431, "d": 2.34}, "patient10": {"a": 0.431, "d": 1.88}}
    spec = CohortSpec(size=4000, seed=0, around=["patient9", "patient10"], parameters={"a": 0.2, "d": 0.5})
    patients = sample_cohort(spec, medians)
    for name, sigma in (("a", 0.2), ("d", 0.5)):
        for variant in ("patient9", "patient10"):
            z = np.log([p.values[name] / medians[variant][name] for p in patients if p.variant == variant])
            n = z.size
            assert abs(z.mean()) < 4 * sigma / math.sqrt(n)
            assert abs(z.std(ddof=1) - sigma) < 4 * sigma / math.sqrt(2 * n)


def test_every_regimen_runs_for_the_same_patients_with_their_values_in_the_config() -> None:
    resolved = resolve_study(cohort_study())
    members = resolved.members
    assert len(members) == 2 * 4 and resolved.columns[:2] == ["regimen", "treatment[chemo].dose_rate"]
    by_regimen = [[m for m in members if m.values["regimen"] == r] for r in (0, 1)]
    for first, second in zip(*by_regimen):
        assert first.values["patient"] == second.values["patient"]
        assert first.values["model.parameters.d"] == second.values["model.parameters.d"]
        assert first.id != second.id
    for m in members:
        params = m.config["model"]["parameters"]
        assert m.config["model"]["variant"] == m.values["variant"]
        assert params["a"] == m.values["model.parameters.a"] and params["d"] == m.values["model.parameters.d"]
        assert params["m"] == (0.204 if m.values["variant"] == "patient9" else 9.12)  # the rest of the variant
    assert "fold_change" in resolved.outcomes
    again = resolve_study(cohort_study())
    assert [m.id for m in again.members] == [m.id for m in members]
    assert [m.id for m in resolve_study(cohort_study(seed=12)).members] != [m.id for m in members]


def test_the_response_table_counts_reductions_and_cures_with_wilson_intervals() -> None:
    frame = pd.DataFrame({
        "regimen": [0] * 4 + [1] * 4, "dose": [1.0] * 4 + [3.0] * 4, "patient": list(range(4)) * 2,
        "status": ["done"] * 7 + ["failed"],
        "fold_change": [1.2, 0.8, 0.6, 0.4, 0.5, 0.45, 0.05, float("nan")],
        "final_burden": [1.2e6, 8e5, 6e5, 4e5, 5e5, 4.5e5, 5e4, float("nan")],
        "cured": [0, 0, 0, 0, 0, 0, 1, float("nan")],
    })
    meta = {"columns": ["regimen", "dose", "patient"], "cohort_columns": ["patient"],
            "outcomes": {"fold_change": {}, "final_burden": {}, "cured": {}}, "report": {},
            "cohort": {"size": 4, "seed": 0, "variants": ["base"], "response": {"series": "tumour_burden",
                       "reductions": [0.3, 0.5]}, "cure_outcome": "cured"}}
    table = response_table(frame, meta).set_index("regimen")
    assert list(table["patients"]) == [4, 3] and list(table["of"]) == [4, 4]
    assert table.loc[0, "response_30_rate"] == 0.5 and table.loc[0, "response_50_rate"] == 0.25
    assert table.loc[1, "response_30_rate"] == 1.0 and table.loc[1, "response_50_rate"] == 1.0
    assert table.loc[1, "cure_rate"] == pytest.approx(1 / 3)
    assert (table.loc[1, "cure_low"], table.loc[1, "cure_high"]) == pytest.approx(wilson_interval(1, 3))
    assert table.loc[0, "fold_change_median"] == pytest.approx(0.7)
    assert table.loc[0, "label"] == "dose=1"


def test_wilson_interval_and_cohort_statistics() -> None:
    low, high = wilson_interval(5, 10)
    assert (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)  # Wilson 1927, 95 %
    assert wilson_interval(0, 12)[0] == 0.0 and wilson_interval(12, 12)[1] == 1.0
    values = [1.0, 2.0, 3.0, 10.0]
    assert aggregate(values, "mean") == 4.0 and aggregate(values, "median") == 2.5
    assert aggregate(values, "quantile", 0.75) == pytest.approx(4.75) and aggregate(values, "max") == 10.0
    assert math.isnan(aggregate([1.0, float("nan")], "mean"))


def test_an_optimisation_over_a_cohort_tells_the_mean_over_its_patients(tmp_path, dask_scheduler) -> None:
    from test_optimise import chrono_opt

    from solver.study.optimise import optimise

    opt = chrono_opt(trials=2, batch=2, sampler={"kind": "random", "seed": 1}, objectives=[{"outcome": "final_T"}],
                     cohort={"size": 3, "seed": 5, "around": "base", "parameters": {"k": 0.3}})
    result = optimise(opt, out=tmp_path / "opt", scheduler=dask_scheduler, progress=False)
    frame = pd.read_csv(tmp_path / "opt" / "trials.csv")
    assert list(frame.columns[:4]) == ["trial", "state", "treatment[drug].start", "final_T_mean"]
    summaries = {m: pd.Series(dict(_outcomes(tmp_path / "opt", m))) for m in ",".join(frame["members"]).split(",")}
    for _, row in frame.iterrows():
        ids = row["members"].split(",")
        assert len(ids) == 3
        assert row["final_T_mean"] == pytest.approx(np.mean([summaries[i]["final_T"] for i in ids]), rel=1e-12)
    assert len(result.trials) == 2


def _outcomes(out, member: str) -> dict[str, float]:
    import json

    return json.loads((out / "members" / member / "result.json").read_text())["outcomes"]


def test_a_heatmap_of_a_design_that_leaves_cells_empty_is_drawn() -> None:
    pytest.importorskip("matplotlib")
    from solver.study.report import heatmap_figure

    frame = pd.DataFrame({"rate": [4.0, 1.0, 4.0, 1.0], "days": [1.0, 4.0, 1.0, 4.0], "final_burden": [2.0, 1.0, 3.0, 2.0]})
    fig = heatmap_figure(frame, "rate", "days", "final_burden")  # zip: (4, 4) and (1, 1) are empty
    assert fig.axes[0].get_title() == "final_burden (mean of 2 members per cell)"
