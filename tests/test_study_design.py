"""Study files and designs (solver/study/spec.py, design.py, members.py): one-line errors,
members combined as the file says, derived values through the whitelist, replicates over
seeds, member ids from the physics. No Dask here: nothing runs."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from solver.errors import ConfigError
from solver.io.checkpoint import config_hash, physics_config
from solver.study import resolve_study
from solver.study.design import design_points, unit_samples
from solver.study.spec import load_study

BASE_SET = {"grid.shape": [8, 8, 8], "grid.spacing": 300.0, "time.end": 2.0, "backend": "numpy",
            "output.pictures": False, "treatment[il2].count": 1, "treatment[chemo].dose_rate": 2.0}


def study(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "t", "base": "quickstart", "set": dict(BASE_SET)}
    data.update(copy.deepcopy(changes))
    return data


def error_of(data: dict[str, Any], resolve: bool = False) -> str:
    with pytest.raises(ConfigError) as info:
        resolve_study(data) if resolve else load_study(data)
    message = str(info.value)
    assert "\n" not in message and message.startswith("<study>: "), message
    return message


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"vry": {}}, ["unknown key 'vry' (did you mean 'vary'?)", "valid keys: name, description, base"]),
        ({"vary": {"x": {"values": [1], "linspace": [0, 1, 2]}}}, ["vary.x: give exactly one of values, range"]),
        ({"vary": {"x": {"valus": [1]}}}, ["unknown key 'vary.x.valus' (did you mean 'values'?)"]),
        ({"vary": {"x": {"values": [1, "a"]}}}, ["vary.x: values must all be of one kind"]),
        ({"vary": {"bad-name": {"values": [1]}}}, ["vary.bad-name: a name is a study variable"]),
        ({"combine": "lhs"}, ["combine: input should be 'product', 'zip', 'random', 'latin-hypercube' or 'sobol'"]),
        ({"combine": "sobol", "samples": 12}, ["sobol needs a power of 2 samples", "use 8 or 16"]),
        ({"combine": "random"}, ["combine: random needs `samples`"]),
        ({"vary": {"x": {"distribution": {"kind": "uniform", "low": 0, "high": 1}}}},
         ["vary.x: a distribution needs a sampling design"]),
        ({"vary": {"x": {"distribution": {"kind": "normal", "mean": 0}}}, "combine": "random", "samples": 4},
         ["vary.x.distribution: a normal distribution takes mean and sd"]),
        ({"combine": "zip", "vary": {"x": {"values": [1, 2]}, "y": {"values": [1]}}},
         ["zip needs every vary entry to have as many values; got x 2, y 1"]),
        ({"cluster": {"kind": "pbs"}}, ["cluster.kind: unknown kind 'pbs'; valid kinds: local, slurm"]),
        ({"cluster": {"kind": "slurm", "queu": "gpu"}}, ["unknown key 'cluster.queu' (did you mean 'queue'?)"]),
        ({"outcomes": {"a": {"final": "x", "min": "x"}}}, ["outcomes.a: give exactly one of final, min"]),
        ({"outcomes": {"a": {"time_below": "C"}}}, ["outcomes.a: time_below needs a threshold"]),
        ({"base": "nope"}, ["base: no built-in config 'nope'", "quickstart"]),
        ({"derive": {"offset": "1"}}, ["derive.offset: a derived value sets a config key"]),
    ],
)
def test_bad_study_files_are_one_line_naming_what_is_allowed(changes: dict[str, Any], fragments: list[str]) -> None:
    message = error_of(study(**changes))
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"vary": {"treatment[pd1].start": {"values": [1.0]}}}, ["no entry for agent 'pd1'", "agents: [chemo], [il2]"]),
        ({"vary": {"model.parameters.K_X": {"values": [1.0]}}}, ["vary model.parameters.K_X: unknown key", "K_T"]),
        ({"set": {**BASE_SET, "time.ed": 1.0}}, ["set time.ed: unknown key 'time.ed'", "did you mean 'end'"]),
        ({"derive": {"treatment[il2].start": "offset + 1"}}, ["derive.treatment[il2].start", "offset"]),
        ({"vary": {"v": {"values": ["patient9"]}}, "derive": {"treatment[il2].start": "v + 1"}},
         ["variable 'v' is 'patient9', not a number"]),
        ({"vary": {"treatment[chemo].dose_rate": {"values": [1.0, 1.0]}}}, ["members 0", "and 1", "same physics"]),
        ({"replicates": {"count": 2, "keys": ["model.maps.x.vessels.seed"]}}, ["not a seed of the base config",
                                                                               "model.maps.w.vessels.seed"]),
        ({"outcomes": {"o": {"final": "tumor_burden"}}}, ["outcomes.o.final", "tumor_burden"]),
        ({"outcomes": {"o": {"dose": "aspirin"}}}, ["'aspirin' is not an agent of the model", "chemo, il2, pd1, til"]),
    ],
)
def test_keys_series_and_agents_are_checked_before_anything_runs(changes: dict[str, Any], fragments: list[str]) -> None:
    message = error_of(study(**changes), resolve=True)
    for fragment in fragments:
        assert fragment in message, message


def test_product_varies_the_first_entry_slowest_and_derives_values() -> None:
    resolved = resolve_study(study(
        vary={"offset": {"values": [0.0, 0.5]}, "treatment[chemo].dose_rate": {"linspace": [1.0, 3.0, 3]}},
        derive={"treatment[il2].start": "0.5 + offset"},
    ))
    design = resolved.members[: resolved.design_size]
    assert resolved.design_size == 6
    assert [(m.values["offset"], m.values["treatment[chemo].dose_rate"]) for m in design] == [
        (0.0, 1.0), (0.0, 2.0), (0.0, 3.0), (0.5, 1.0), (0.5, 2.0), (0.5, 3.0)]
    assert [m.values["treatment[il2].start"] for m in design] == [0.5] * 3 + [1.0] * 3
    for m in design:  # the resolved config holds what the values say
        assert m.config["treatment"][0]["dose_rate"] == m.values["treatment[chemo].dose_rate"]
        assert m.config["treatment"][1]["start"] == m.values["treatment[il2].start"]
        assert m.config["grid"]["shape"] == [8, 8, 8]  # the study's `set`
    # the base (the set dose rate 2, the quickstart's IL-2 at day 1) is the member with offset 0.5 and rate 2
    assert [m.index for m in resolved.members if m.base] == [4] and len(resolved.members) == 6
    assert resolved.columns == ["offset", "treatment[chemo].dose_rate", "treatment[il2].start"]


def test_the_base_is_run_besides_the_design_when_it_is_not_in_it() -> None:
    resolved = resolve_study(study(vary={"treatment[chemo].dose_rate": {"values": [0.5, 1.0]}}))
    assert len(resolved.members) == 3 and resolved.design_size == 2
    base = resolved.members[-1]
    assert base.base and base.values == {"treatment[chemo].dose_rate": 2.0}
    without = resolve_study(study(vary={"treatment[chemo].dose_rate": {"values": [0.5, 1.0]}}, include_base=False))
    assert len(without.members) == 2 and not any(m.base for m in without.members)


def test_member_ids_are_the_hash_of_the_physics_and_ignore_the_name() -> None:
    a = resolve_study(study(vary={"treatment[chemo].dose_rate": {"values": [0.5, 1.0]}}))
    b = resolve_study(study(name="other", vary={"treatment[chemo].dose_rate": {"values": [1.0, 0.5]}}))
    assert {m.id for m in a.members} == {m.id for m in b.members}
    for m in a.members:
        assert m.id == config_hash(physics_config(m.config))[:12]
        assert m.config["name"] == f"t-{m.id}" and m.config["output"]["dir"] is None


def test_a_member_whose_value_does_not_validate_is_kept_with_its_error() -> None:
    resolved = resolve_study(study(vary={"time.end": {"values": [-1.0, 2.0]}}))
    bad, good = resolved.members[:2]
    assert bad.config is None and "time.end" in bad.error and "greater than 0" in bad.error
    assert good.config is not None and good.error is None


def test_replicates_vary_every_generated_map_seed_from_the_base_value() -> None:
    resolved = resolve_study(study(vary={"treatment[chemo].dose_rate": {"values": [1.0, 2.0]}}, replicates=3))
    design = resolved.members[: resolved.design_size]
    assert len(design) == 6
    seeds = [m.config["model"]["maps"]["w"]["vessels"]["seed"] for m in design]
    assert seeds == [7, 8, 9, 7, 8, 9]  # quickstart's seed is 7; replicate 0 is the base
    assert [m.values["replicate"] for m in design] == [0, 1, 2, 0, 1, 2]
    assert len({m.id for m in design}) == 6


def test_replicates_need_a_seed() -> None:
    data = study(base={"grid": {"shape": [4, 4, 4]}, "time": {"end": 1.0},
                       "model": {"species": {"u": {"diffusion": 1.0}}}}, replicates=2)
    data["set"] = {}
    assert "no random seed" in error_of(data, resolve=True)


@pytest.mark.parametrize("combine", ["random", "latin-hypercube", "sobol"])
def test_sampling_designs_are_reproducible_and_fill_the_cube(combine: str) -> None:
    u = unit_samples(combine, 16, 3, seed=4)
    assert u.shape == (16, 3) and np.all((u >= 0) & (u < 1))
    assert np.array_equal(u, unit_samples(combine, 16, 3, seed=4))
    assert not np.array_equal(u, unit_samples(combine, 16, 3, seed=5))
    if combine != "random":  # one point in each of the 16 strata of every axis
        for j in range(3):
            assert sorted(np.floor(u[:, j] * 16).astype(int)) == list(range(16))


def test_a_latin_hypercube_maps_points_through_distributions_and_value_lists() -> None:
    spec = load_study(study(
        combine="latin-hypercube", samples=8, seed=1,
        vary={"model.parameters.K_T": {"distribution": {"kind": "loguniform", "low": 0.1, "high": 1.0}},
              "treatment[chemo].dose_rate": {"values": [1.0, 2.0]},
              "model.maps.w.vessels.seed": {"distribution": {"kind": "integers", "low": 1, "high": 4}}},
    )).spec
    points = design_points(spec)
    k_t = [p.values["model.parameters.K_T"] for p in points]
    assert all(0.1 <= k <= 1.0 for k in k_t) and len(set(k_t)) == 8
    # strata of log(K_T): one per eighth of [log 0.1, log 1]
    assert sorted(np.floor((np.log10(k_t) + 1.0) * 8).astype(int)) == list(range(8))
    assert sorted(p.values["treatment[chemo].dose_rate"] for p in points) == [1.0] * 4 + [2.0] * 4
    assert sorted(p.values["model.maps.w.vessels.seed"] for p in points) == [1, 1, 2, 2, 3, 3, 4, 4]


def test_zip_pairs_the_values_and_range_includes_its_stop() -> None:
    spec = load_study(study(combine="zip", vary={"treatment[chemo].dose_rate": {"range": [0.5, 1.5, 0.5]},
                                                 "treatment[chemo].start": {"values": [0.0, 0.1, 0.2]}})).spec
    assert [tuple(p.values.values()) for p in design_points(spec)] == [(0.5, 0.0), (1.0, 0.1), (1.5, 0.2)]
