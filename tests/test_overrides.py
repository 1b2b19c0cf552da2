"""`--set KEY=VALUE` (solver/config/overrides.py): keys walked down the config's schema,
values typed and validated like the config itself, unknown keys refused with the valid
ones named; and the same through `tumorsim run|validate --set`."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from solver.config import (
    Override,
    apply_overrides,
    builtin_config_path,
    load_config,
    parse_config,
    parse_key,
    parse_override,
    read_config_file,
)
from solver.config.overrides import Item
from solver.errors import ConfigError

QUICKSTART = builtin_config_path("quickstart")
REPO = Path(__file__).resolve().parent.parent


def error_of(*sets: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(QUICKSTART, sets)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("model.parameters.K_T=0.5", ("model", "parameters", "K_T"), 0.5),
        ("treatment[il2].start=1", ("treatment", Item("il2"), "start"), 1),
        ("treatment[0].dose_rate=2.5e-1", ("treatment", Item(0), "dose_rate"), 0.25),
        ("grid.shape=[8, 8, 8]", ("grid", "shape"), [8, 8, 8]),
        ("grid.shape[2]=12", ("grid", "shape", Item(2), ), 12),
        ("model.variant=patient10", ("model", "variant"), "patient10"),
        ("output.pictures=false", ("output", "pictures"), False),
        ("output.checkpoint=null", ("output", "checkpoint"), None),
        ("name=a=b", ("name",), "a=b"),
    ],
)
def test_an_override_is_a_key_path_and_a_yaml_value(text: str, path: tuple, value: object) -> None:
    o = parse_override(text)
    assert o.path == path
    assert o.value == value and type(o.value) is type(value)


def test_overrides_land_typed_and_validated_where_the_key_says() -> None:
    config = load_config(
        QUICKSTART,
        ["treatment[il2].start=2", "treatment[0].dose_rate=1.5", "model.parameters.K_T=0.5",
         "model.maps.w.vessels.seed=3", "grid.shape[0]=10", "output.checkpoint.keep=5",
         "model.species.T.initial.tumour.radius=500"],
    )
    assert config.treatment[1].agent == "il2" and config.treatment[1].start == 2.0
    assert isinstance(config.treatment[1].start, float)  # typed by the schema
    assert config.treatment[0].dose_rate == 1.5
    assert config.model.parameters["K_T"] == 0.5
    assert config.model.maps["w"].vessels.seed == 3
    assert config.model.maps["w"].vessels.kind == "necrotic_core"  # the rest of the map is kept
    assert config.grid.shape == (10, 16, 16)
    # a section the file leaves out starts from its defaults: only `keep` changes
    assert config.output.checkpoint.keep == 5 and config.output.checkpoint.every_seconds == 1800.0
    assert config.model.species["T"].initial.tumour.radius == 500.0
    assert config.model.species["T"].initial.tumour.density == 5.0e8


def test_an_override_equals_the_same_edit_in_the_file(tmp_path: Path) -> None:
    data = read_config_file(QUICKSTART)
    edited = copy.deepcopy(data)
    edited["treatment"][1]["start"] = 2.5
    edited["model"].setdefault("parameters", {})["K_T"] = 0.3
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(edited), encoding="utf-8")
    by_hand = load_config(path)
    by_set = load_config(QUICKSTART, ["treatment[il2].start=2.5", "model.parameters.K_T=0.3"])
    assert by_set.model_dump() == by_hand.model_dump()
    assert by_set.base_dir == QUICKSTART.resolve().parent


def test_a_variant_brings_its_parameter_set_and_explicit_parameters_still_win() -> None:
    patient10 = load_config(QUICKSTART, ["model.variant=patient10"])
    assert patient10.model.variant == "patient10"
    assert patient10.model.parameters["d"] == 1.88 and patient10.model.parameters["m"] == 9.12
    both = load_config(QUICKSTART, ["model.variant=patient10", "model.parameters.d=3.0"])
    assert both.model.parameters["d"] == 3.0 and both.model.parameters["m"] == 9.12


def test_a_variant_changes_a_resolved_config_too_keeping_hand_set_parameters(tmp_path: Path) -> None:
    resolved = load_config(QUICKSTART, ["model.parameters.K_T=0.5"]).model_dump(mode="json")
    assert resolved["model"]["parameters"]["d"] == 2.34  # patient9, written out in full
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(resolved), encoding="utf-8")
    patient10 = load_config(path, ["model.variant=patient10"])
    assert patient10.model.parameters["d"] == 1.88 and patient10.model.parameters["m"] == 9.12
    assert patient10.model.parameters["K_T"] == 0.5  # changed by hand: kept
    assert patient10.model_dump() == load_config(QUICKSTART, ["model.parameters.K_T=0.5",
                                                              "model.variant=patient10"]).model_dump()


def test_the_mapping_given_is_not_changed() -> None:
    data = read_config_file(QUICKSTART)
    before = copy.deepcopy(data)
    out = apply_overrides(data, ["treatment[il2].start=3", ("model.parameters.K_T", 0.1)])
    assert data == before
    assert out["treatment"][1]["start"] == 3 and out["model"]["parameters"]["K_T"] == 0.1
    assert parse_config(out).treatment[1].start == 3.0


@pytest.mark.parametrize(
    ("sets", "fragments"),
    [
        (["model.parameters.K_X=1"], ["unknown key 'model.parameters.K_X'", "did you mean 'K_T'", "valid keys of model.parameters: a, b, V_pack, c"]),
        (["model.paramters.K_T=1"], ["unknown key 'model.paramters'", "did you mean 'parameters'", "valid keys of model: builtin, variant, parameters"]),
        (["gird.shape=[8,8,8]"], ["unknown key 'gird'", "valid keys: name, backend, precision, grid"]),
        (["treatment[il2].strat=1"], ["unknown key 'treatment[il2].strat'", "did you mean 'start'", "agent, kind, dose"]),
        (["treatment[pd1].start=1"], ["no entry for agent 'pd1'", "agents: [chemo], [il2]", "[0]..[1]"]),
        (["treatment[7].start=1"], ["treatment has no item [7]", "[0]..[1]"]),
        (["model.maps.w.vessels.sed=1"], ["unknown key 'model.maps.w.vessels.sed'", "did you mean 'seed'", "kind, seed"]),
        (["model.species.X.diffusion=1"], ["unknown key 'model.species.X'", "valid keys of model.species: T, N, L, K, M, I, A"]),
        (["grid.spacing.x=1"], ["grid.spacing is 150.0, which has no key 'x'"]),
        (["treatment[il2].start=abc"], ["treatment[1].start: input should be a valid number", "set by --set treatment[il2].start=abc"]),
        (["time.end=-1"], ["time.end: input should be greater than 0", "set by --set time.end=-1"]),
        (["model.variant=patient11"], ["no variant 'patient11'", "patient9, patient10", "set by --set model.variant=patient11"]),
        (["model.parameters.K_T=true"], ["model.parameters.K_T", "expected a number"]),
        (["K_T"], ["expected KEY=VALUE"]),
        (["a..b=1"], ["malformed key 'a..b'"]),
        (["treatment[il2].start=[1"], ["is not valid YAML"]),
    ],
)
def test_bad_overrides_are_one_line_naming_what_is_allowed(sets: list[str], fragments: list[str]) -> None:
    message = error_of(*sets)
    for fragment in fragments:
        assert fragment in message, message


def test_an_ambiguous_agent_must_be_picked_by_index() -> None:
    data = read_config_file(QUICKSTART)
    data["treatment"].append({"agent": "il2", "kind": "bolus", "dose": 1.0e6, "start": 6.0})
    with pytest.raises(ConfigError, match=r"2 entries for agent 'il2' \(treatment\[1\], treatment\[2\]\)"):
        apply_overrides(data, ["treatment[il2].start=1"])
    assert apply_overrides(data, ["treatment[2].start=5"])["treatment"][2]["start"] == 5


def test_override_text_round_trips() -> None:
    o = parse_override("treatment[il2].start=1.5")
    assert isinstance(o, Override) and str(o) == "treatment[il2].start=1.5"
    assert parse_override(str(o)) == o
    assert parse_key("model.maps.w.vessels.seed") == ("model", "maps", "w", "vessels", "seed")


def tumorsim(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "solver", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_command_line_takes_set_and_refuses_unknown_keys(tmp_path: Path) -> None:
    good = tumorsim("validate", str(QUICKSTART), "--set", "grid.shape=[8, 8, 8]", "--set", "treatment[il2].start=2",
                    cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert "grid (8, 8, 8)" in good.stdout
    bad = tumorsim("run", str(QUICKSTART), "--out", "out", "--set", "model.parameters.K_X=1", cwd=tmp_path)
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tumorsim: error: --set model.parameters.K_X: unknown key")
    assert "valid keys of model.parameters" in lines[0] and "Traceback" not in bad.stderr
    assert not (tmp_path / "out").exists()
