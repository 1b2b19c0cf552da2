"""Config loading and validation (solver.config): defaults, boundary forms, one-line errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pydantic
import pytest

from solver.config import (
    ChemotaxisConfig,
    FileSource,
    GridConfig,
    OutputConfig,
    RunConfig,
    SpeciesConfig,
    TimeConfig,
    builtin_config_path,
    load_config,
    normalise_boundary,
    parse_config,
)
from solver.errors import ConfigError

TINY: dict[str, Any] = {
    "grid": {"shape": [4, 4, 4]},
    "time": {"end": 1.0},
    "model": {"species": {"u": {"diffusion": 1.0}}},
}


def tiny(**changes: Any) -> dict[str, Any]:
    """A fresh copy of the smallest valid config, with top-level keys changed."""
    data = copy.deepcopy(TINY)
    data.update(changes)
    return data


def with_species(**u: Any) -> dict[str, Any]:
    data = tiny()
    data["model"]["species"]["u"].update(u)
    return data


def error_of(data: Any, source: str = "<test>") -> str:
    """The ConfigError message for `data`, checked to be one line starting with the source."""
    with pytest.raises(ConfigError) as info:
        parse_config(data, source=source)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{source}: ")
    return message


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    return message


NO_FLUX = {"kind": "no-flux"}
PERIODIC = {"kind": "periodic"}


def faces(x: dict, y: dict = NO_FLUX, z: dict = NO_FLUX) -> dict[str, dict[str, dict]]:
    return {"x": {"low": x, "high": x}, "y": {"low": y, "high": y}, "z": {"low": z, "high": z}}


# ------------------------------------------------------------------------------- defaults


def test_defaults_are_filled_in() -> None:
    config = parse_config(tiny())
    assert (config.name, config.backend, config.precision) == ("run", "auto", "float32")
    assert config.grid.shape == (4, 4, 4)
    assert config.grid.spacing == 1.0 and config.grid.spacing3 == (1.0, 1.0, 1.0)
    assert (config.time.dt, config.time.safety, config.time.integrator) == ("auto", 0.9, "auto")
    assert config.output == OutputConfig()
    assert (config.output.check_every, config.output.compression) == (100, "gzip")
    assert config.model.parameters == {} and config.model.maps == {}
    u = config.model.species["u"]
    assert (u.diffusion, u.reaction, u.initial, u.chemotaxis, u.nonnegative) == (
        1.0,
        0.0,
        0.0,
        None,
        True,
    )


def test_default_boundary_is_normalised_no_flux() -> None:
    # The grid reads the normalised {axis: {side: face}} form; the default must have it too.
    u = parse_config(tiny()).model.species["u"]
    assert u.boundary == faces(NO_FLUX)


def test_config_is_frozen() -> None:
    config = parse_config(tiny())
    with pytest.raises(pydantic.ValidationError):
        config.name = "other"  # type: ignore[misc]


def test_per_axis_spacing() -> None:
    config = parse_config(tiny(grid={"shape": [4, 4, 4], "spacing": [1, 2.5, 3]}))
    assert config.grid.spacing3 == (1.0, 2.5, 3.0)


def test_fixed_dt_and_numbers_written_as_text() -> None:
    # YAML 1.1 reads 1e-3 (no dot) as text; it is still a number here.
    config = parse_config(tiny(time={"end": "2", "dt": "1e-3", "safety": 0.5}))
    assert (config.time.end, config.time.dt, config.time.safety) == (2.0, 1e-3, 0.5)


def test_initial_from_a_file() -> None:
    config = parse_config(with_species(initial={"file": "u0.h5", "dataset": "u"}))
    assert config.model.species["u"].initial == FileSource(file="u0.h5", dataset="u")


# ------------------------------------------------------------------------ boundary forms


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("no-flux", faces(NO_FLUX)),
        ("periodic", faces(PERIODIC, PERIODIC, PERIODIC)),
        ("No_Flux", faces(NO_FLUX)),
        ({"value": 2}, faces(*[{"kind": "value", "value": 2.0}] * 3)),
        ({"x": "periodic"}, faces(PERIODIC)),
        (
            {"y": "periodic", "z": {"value": 0.5}},
            faces(NO_FLUX, PERIODIC, {"kind": "value", "value": 0.5}),
        ),
        (
            {"x": {"low": {"value": 1}, "high": "no-flux"}},
            {
                "x": {"low": {"kind": "value", "value": 1.0}, "high": NO_FLUX},
                "y": {"low": NO_FLUX, "high": NO_FLUX},
                "z": {"low": NO_FLUX, "high": NO_FLUX},
            },
        ),
        (
            {"z": {"high": {"value": 3}}},
            {
                "x": {"low": NO_FLUX, "high": NO_FLUX},
                "y": {"low": NO_FLUX, "high": NO_FLUX},
                "z": {"low": NO_FLUX, "high": {"kind": "value", "value": 3.0}},
            },
        ),
        ({"x": {"low": "periodic", "high": "periodic"}}, faces(PERIODIC)),
        (
            {"x": {"low": {"permeable": {"permeability": 2, "value": 1.5}}}},
            {
                "x": {"low": {"kind": "permeable", "value": 1.5, "permeability": 2.0}, "high": NO_FLUX},
                "y": {"low": NO_FLUX, "high": NO_FLUX},
                "z": {"low": NO_FLUX, "high": NO_FLUX},
            },
        ),
    ],
)
def test_boundary_forms_are_normalised(spec: Any, expected: dict) -> None:
    assert parse_config(with_species(boundary=spec)).model.species["u"].boundary == expected
    assert normalise_boundary(expected) == expected  # the normalised form reads back as is


@pytest.mark.parametrize(
    "spec",
    [
        {"x": {"low": "periodic", "high": "no-flux"}},
        {"x": {"low": "periodic"}},
        {"y": {"low": {"value": 1}, "high": "periodic"}},
    ],
)
def test_periodic_on_one_face_only_is_refused(spec: Any) -> None:
    message = error_of(with_species(boundary=spec))
    axis = next(iter(spec))
    assert f"model.species.u.boundary.{axis}: periodic on one face only" in message
    assert "both faces" in message


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        (
            "dirichlet",
            [
                "model.species.u.boundary: unknown boundary 'dirichlet'",
                "allowed: no-flux, periodic, {value: NUMBER}",
            ],
        ),
        ({"w": "periodic"}, ["unknown key 'w'", "valid keys: x, y, z"]),
        (
            {"x": {"low": "periodic", "middle": "periodic"}},
            ["model.species.u.boundary.x: unknown key 'middle'", "valid keys: low, high"],
        ),
        ({"x": {"low": "nope"}}, ["model.species.u.boundary.x.low: unknown boundary 'nope'"]),
        ({"value": "1"}, ["fixed value must be a finite number, got '1'"]),
        ({"value": True}, ["fixed value must be a finite number, got True"]),
        ({"value": 1, "kind": "x"}, ["unknown boundary"]),
        (None, ["unknown boundary None"]),
    ],
)
def test_bad_boundary_names_what_is_allowed(spec: Any, fragments: list[str]) -> None:
    message = error_of(with_species(boundary=spec))
    for fragment in fragments:
        assert fragment in message


# ------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("data", "key", "hint", "cls"),
    [
        (tiny(gird={}), "gird", "grid", RunConfig),
        (tiny(grid={"shape": [4, 4, 4], "spacnig": 1}), "grid.spacnig", "spacing", GridConfig),
        (tiny(time={"end": 1, "saftey": 0.5}), "time.saftey", "safety", TimeConfig),
        (tiny(output={"snapshot": 1}), "output.snapshot", "snapshot_every", OutputConfig),
        (with_species(difusion=1), "model.species.u.difusion", "diffusion", SpeciesConfig),
        (
            with_species(chemotaxis={"signal": "u", "sensitivty": 1}),
            "model.species.u.chemotaxis.sensitivty",
            "sensitivity",
            ChemotaxisConfig,
        ),
        (
            with_species(initial={"file": "a.npy", "datset": "u"}),
            "model.species.u.initial.datset",
            "dataset",
            FileSource,
        ),
    ],
)
def test_unknown_key_lists_the_valid_keys_and_the_close_match(
    data: dict, key: str, hint: str, cls: type[pydantic.BaseModel]
) -> None:
    message = error_of(data)
    assert f"unknown key {key!r}" in message
    assert f"(did you mean {hint!r}?)" in message
    assert f"valid keys: {', '.join(cls.model_fields)}" in message


def test_unknown_key_in_model_lists_its_keys() -> None:
    data = tiny()
    data["model"]["paramters"] = {"D": 1}
    message = error_of(data)
    assert "unknown key 'model.paramters' (did you mean 'parameters'?)" in message
    assert "valid keys: builtin, variant, parameters, maps, definitions, species, systemic, agents, diagnostics" in message


def test_unknown_key_is_reported_before_the_missing_key_it_causes() -> None:
    data = tiny(grid={"shap": [4, 4, 4]})  # the misspelt key also leaves 'shape' missing
    assert "unknown key 'grid.shap' (did you mean 'shape'?)" in error_of(data)


def test_species_keyed_like_a_type_name_is_shown_as_written() -> None:
    data = tiny()
    data["model"]["species"] = {"float": {"difusion": 1}}
    assert "unknown key 'model.species.float.difusion'" in error_of(data)


# ------------------------------------------------------------------------- range errors


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        (
            tiny(grid={"shape": [4, 4, 4], "spacing": -1}),
            ["grid.spacing: ", "greater than 0", "got -1"],
        ),
        (
            tiny(grid={"shape": [4, 4, 4], "spacing": 0}),
            ["grid.spacing: ", "greater than 0", "got 0"],
        ),
        (
            tiny(grid={"shape": [4, 4, 4], "spacing": [1, 0, 1]}),
            ["grid.spacing[1]: ", "greater than 0", "got 0"],
        ),
        (
            tiny(grid={"shape": [4, 0, 4]}),
            ["grid.shape[1]: ", "greater than or equal to 1", "got 0"],
        ),
        (tiny(grid={"shape": [4, 4, 100000]}), ["grid.shape[2]: ", "less than or equal to 65536"]),
        (tiny(grid={"shape": [4, 4]}), ["grid.shape: expected 3 values [x, y, z], got [4, 4]"]),
        (tiny(grid={"shape": [4, 4, 4, 4]}), ["grid.shape: expected 3 values", "got [4, 4, 4, 4]"]),
        (tiny(grid={"shape": [4.5, 4, 4]}), ["grid.shape[0]: ", "got 4.5"]),
        (tiny(grid={"shape": [True, 4, 4]}), ["grid.shape[0]: expected a number, got True"]),
        (tiny(time={"end": 0}), ["time.end: ", "greater than 0", "got 0"]),
        (tiny(time={"end": -2.5}), ["time.end: ", "greater than 0", "got -2.5"]),
        (tiny(time={"end": float("inf")}), ["time.end: ", "finite number", "got inf"]),
        (tiny(time={"end": True}), ["time.end: expected a number, got True"]),
        (
            tiny(time={"end": 1, "safety": 1.5}),
            ["time.safety: ", "less than or equal to 1", "got 1.5"],
        ),
        (tiny(time={"end": 1, "safety": 0}), ["time.safety: ", "greater than 0", "got 0"]),
        (tiny(time={"end": 1, "dt": -1}), ["time.dt: must be 'auto' or a number > 0, got -1"]),
        (
            tiny(time={"end": 1, "dt": "fast"}),
            ["time.dt: must be 'auto' or a number > 0, got 'fast'"],
        ),
        (
            tiny(output={"check_every": 0}),
            ["output.check_every: ", "greater than or equal to 1", "got 0"],
        ),
        (
            tiny(output={"snapshot_every": -1}),
            ["output.snapshot_every: ", "greater than 0", "got -1"],
        ),
        (tiny(backend="cuda"), ["backend: ", "'auto', 'gpu', 'cpu' or 'numpy'", "got 'cuda'"]),
        (tiny(precision="float16"), ["precision: ", "'float32' or 'float64'", "got 'float16'"]),
        (tiny(name="../elsewhere"), ["name: '../elsewhere' is not allowed", "output folder"]),
    ],
)
def test_range_error_names_the_key_the_value_and_what_is_allowed(
    data: dict, fragments: list[str]
) -> None:
    message = error_of(data)
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    ("field", "value"),
    [("diffusion", True), ("reaction", [1, 2]), ("reaction", None), ("initial", float("nan"))],
)
def test_expression_field_takes_a_number_or_text(field: str, value: Any) -> None:
    message = error_of(with_species(**{field: value}))
    assert f"model.species.u.{field}: expected a" in message
    assert repr(value) in message


def test_parameter_must_be_a_number() -> None:
    data = tiny()
    data["model"]["parameters"] = {"k": True}
    assert "model.parameters.k: expected a number, got True" in error_of(data)


def test_species_without_keys_names_the_valid_keys() -> None:
    data = tiny()
    data["model"]["species"]["v"] = None
    message = error_of(data)
    assert "model.species.v: expected a mapping with keys diffusion, reaction" in message


def test_section_that_is_not_a_mapping() -> None:
    assert "time: expected a mapping with keys end, dt" in error_of(tiny(time=5))


# ---------------------------------------------------------------------- missing or empty


@pytest.mark.parametrize("key", ["grid", "time", "model"])
def test_missing_required_section(key: str) -> None:
    data = tiny()
    del data[key]
    assert f"missing required key {key!r}" in error_of(data)


@pytest.mark.parametrize(
    ("section", "key", "full"),
    [("grid", "shape", "grid.shape"), ("time", "end", "time.end")],
)
def test_missing_required_key(section: str, key: str, full: str) -> None:
    data = tiny()
    del data[section][key]
    assert f"missing required key {full!r}" in error_of(data)


def test_missing_species_and_empty_species() -> None:
    data = tiny()
    del data["model"]["species"]
    assert "missing required key 'model.species'" in error_of(data)
    data["model"]["species"] = {}
    assert "model.species: needs at least 1 entry" in error_of(data)


def test_missing_chemotaxis_signal() -> None:
    message = error_of(with_species(chemotaxis={"sensitivity": 1.0}))
    assert "missing required key 'model.species.u.chemotaxis.signal'" in message


@pytest.mark.parametrize(
    ("data", "got"),
    [(None, "got an empty file"), ([1, 2], "got [1, 2]"), ("text", "got 'text'"), (42, "got 42")],
)
def test_a_config_that_is_not_a_mapping(data: Any, got: str) -> None:
    message = error_of(data)
    assert "a config must be a mapping of keys (name, backend" in message
    assert got in message


def test_a_key_that_is_not_text() -> None:
    data = tiny()
    data[1] = 2
    assert "key 1 is not valid" in error_of(data)


# ------------------------------------------------------------------------------ names


@pytest.mark.parametrize(
    ("section", "name", "fragment"),
    [
        ("species", "t", "species name 't' is reserved"),
        ("species", "exp", "species name 'exp' is reserved"),
        ("species", "1abc", "species name '1abc' is not a valid name"),
        ("species", "class", "species name 'class' is not a valid name"),
        ("species", "a-b", "species name 'a-b' is not a valid name"),
        ("parameters", "x", "parameter name 'x' is reserved"),
        ("parameters", "lambda", "parameter name 'lambda' is not a valid name"),
        ("maps", "dt", "map name 'dt' is reserved"),
    ],
)
def test_reserved_or_invalid_names_are_refused(section: str, name: str, fragment: str) -> None:
    data = tiny()
    data["model"][section] = {name: {} if section == "species" else 1.0}
    if section != "species":
        data["model"]["species"] = {"u": {}}
    message = error_of(data)
    assert f"model.{section}: {fragment}" in message
    if "reserved" in fragment:
        assert "reserved names: abs, cos, dt, exp" in message


# ------------------------------------------------------------------------------ files


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_load_config_reads_yaml_and_remembers_its_folder(tmp_path: Path) -> None:
    path = write(
        tmp_path / "run.yaml",
        "grid: {shape: [4, 4, 4]}\ntime: {end: 1}\nmodel:\n"
        "  species: {u: {initial: {file: u0.npy}}}\n",
    )
    config = load_config(path)
    assert config.base_dir == tmp_path.resolve()
    assert config.resolve_path("u0.npy") == tmp_path.resolve() / "u0.npy"
    assert config.grid.shape == (4, 4, 4)


def test_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "name: x\ngrid:\n  shape: [4, 4, 4]\n  spacing: 1: 2\n")
    message = load_error(path)
    assert message.startswith(f"{path}: YAML syntax error at line 4, column")
    assert "mapping values are not allowed here" in message


def test_yaml_key_written_twice_is_refused_with_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "twice.yaml", "grid: {shape: [4, 4, 4]}\ntime: {end: 1}\ntime: {end: 2}\n"
    )
    message = load_error(path)
    assert "line 3" in message and "key 'time' is written twice" in message


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    message = load_error(write(tmp_path / "list.yaml", "- grid\n- time\n"))
    assert "a config must be a mapping of keys" in message and "got ['grid', 'time']" in message
    assert "got an empty file" in load_error(write(tmp_path / "empty.yaml", ""))


def test_yaml_python_tags_are_not_constructed(tmp_path: Path) -> None:
    path = write(tmp_path / "tag.yaml", "name: !!python/object/apply:os.system ['touch pwned']\n")
    assert "YAML syntax error" in load_error(path)
    assert not (tmp_path / "pwned").exists()


def test_missing_file_and_folder(tmp_path: Path) -> None:
    assert "not found" in load_error(tmp_path / "nope.yaml")
    assert "is a folder" in load_error(tmp_path)


def test_error_from_a_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "typo.yaml", "gird: {shape: [4, 4, 4]}\n")
    assert load_error(path).startswith(f"{path}: unknown key 'gird'")


@pytest.mark.parametrize("name", ["quickstart", "fisher_front"])
def test_shipped_configs_are_valid(name: str) -> None:
    config = load_config(builtin_config_path(name))
    assert config.model.species


def test_unknown_builtin_config_lists_the_shipped_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"no built-in config 'nope'; shipped configs: .*quickstart"
    ):
        builtin_config_path("nope")


# ---------------------------------------------------------------- round trip and replace

FULL: dict[str, Any] = {
    "name": "full-run",
    "backend": "numpy",
    "precision": "float64",
    "grid": {"shape": [8, 4, 2], "spacing": [1.0, 2.0, 0.5], "length_unit": "um"},
    "time": {"end": 3.0, "dt": 0.01, "safety": 0.5, "integrator": "explicit", "unit": "h"},
    "output": {
        "dir": "out",
        "snapshot_every": 1.0,
        "series_every": 0.5,
        "check_every": 7,
        "compression": "lzf",
    },
    "model": {
        "parameters": {"D": 1.0, "r": 0.5},
        "maps": {"w": "1 + x", "m": {"file": "m.h5", "dataset": "m"}},
        "species": {
            "u": {
                "diffusion": "D",
                "reaction": "r*u*(1 - u)",
                "initial": "1 if x < 2 else 0",
                "boundary": {"x": {"low": {"value": 1}, "high": "no-flux"}, "y": "periodic"},
            },
            "v": {
                "diffusion": 2,
                "initial": {"file": "v0.npy"},
                "nonnegative": False,
                "chemotaxis": {"signal": "u", "sensitivity": "2*r"},
            },
        },
    },
}


def test_resolved_config_round_trips_through_json() -> None:
    config = parse_config(copy.deepcopy(FULL))
    again = parse_config(json.loads(config.to_json()))
    assert again == config
    assert again.to_json() == config.to_json()


def test_resolved_config_holds_the_defaults() -> None:
    resolved = json.loads(parse_config(tiny()).to_json())
    assert resolved["time"]["dt"] == "auto" and resolved["output"]["check_every"] == 100
    assert resolved["model"]["species"]["u"]["boundary"] == faces(NO_FLUX)


def test_replace_changes_one_key_and_validates_it(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", json.dumps(FULL))  # JSON is YAML
    config = load_config(path)
    cpu = config.replace(backend="gpu")
    assert cpu.backend == "gpu" and config.backend == "numpy"
    assert cpu.model == config.model and cpu.grid == config.grid
    assert cpu.base_dir == config.base_dir == tmp_path.resolve()
    with pytest.raises(ConfigError, match=r"^<command line>: backend: .*'auto', 'gpu', 'cpu' or 'numpy'"):
        config.replace(backend="tpu")
    with pytest.raises(ConfigError, match=r"unknown key 'colour'"):
        config.replace(colour="red")
