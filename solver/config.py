"""Run configuration: YAML -> validated, frozen, typed config objects.

Public API:
    load_config(path) -> RunConfig      read a YAML file (safe loader) and validate it
    parse_config(data, source) -> RunConfig
    builtin_config_path(name) -> Path   a config shipped with the package (e.g. "quickstart")
    RunConfig and its sections: GridConfig, TimeConfig, OutputConfig, ModelConfig,
    SpeciesConfig, ChemotaxisConfig, FileSource.

Validation is done by pydantic; its errors are turned into ONE line that names the
key, the value and what is allowed (unknown keys list the valid keys). Expressions
stay text here: solver.model parses them through the whitelist, because which names
they may use depends on the whole model.
"""

from __future__ import annotations

import difflib
import json
import keyword
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from solver.errors import ConfigError
from solver.expressions import FUNCTIONS
from solver.package_data import data_dir

# Names the solver itself gives meaning to; a species, parameter or map may not take them.
RESERVED_NAMES = frozenset({"t", "x", "y", "z", "dt"} | set(FUNCTIONS))
AXES = ("x", "y", "z")
FACE_KINDS = ("no-flux", "periodic", "value")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Expression = Union[float, int, str]
PositiveFloat = Annotated[float, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSource(_Section):
    """An array read from a file: .npy, or .h5/.hdf5 with a dataset name."""

    file: str
    dataset: str | None = None


class GridConfig(_Section):
    """Cell-centred Cartesian grid: cell (i,j,k) has centre ((i+1/2)hx, (j+1/2)hy, (k+1/2)hz)."""

    shape: tuple[Annotated[int, Field(ge=1, le=65536)], ...] = Field(min_length=3, max_length=3)
    spacing: PositiveFloat | tuple[PositiveFloat, PositiveFloat, PositiveFloat] = 1.0
    length_unit: str = ""

    @property
    def spacing3(self) -> tuple[float, float, float]:
        s = self.spacing
        return (float(s), float(s), float(s)) if isinstance(s, (int, float)) else tuple(s)


class TimeConfig(_Section):
    """Simulated time span and step control."""

    end: PositiveFloat
    dt: Literal["auto"] | PositiveFloat = "auto"
    safety: float = Field(0.9, gt=0, le=1)
    integrator: Literal["explicit", "auto"] = "auto"
    unit: str = ""


class OutputConfig(_Section):
    """Where and how often a run writes; times are simulated time, check_every is steps."""

    dir: str | None = None
    snapshot_every: PositiveFloat | None = None
    series_every: PositiveFloat | None = None
    check_every: int = Field(100, ge=1)
    compression: Literal["gzip", "lzf", "none"] = "gzip"


class ChemotaxisConfig(_Section):
    """Flux chi * u * grad(signal): the species moves up the gradient of `signal`."""

    signal: str
    sensitivity: Expression


class SpeciesConfig(_Section):
    """One field on the grid: du/dt = D lap u - div(chi u grad s) + reaction."""

    diffusion: Expression = 0.0
    reaction: Expression = 0.0
    initial: Expression | FileSource = 0.0
    boundary: Any = Field("no-flux", validate_default=True)
    chemotaxis: ChemotaxisConfig | None = None
    nonnegative: bool = True

    @field_validator("boundary", mode="before")
    @classmethod
    def _normalise_boundary(cls, value: Any) -> dict[str, dict[str, Any]]:
        return normalise_boundary(value)


class ModelConfig(_Section):
    """A model written as data: parameters, static maps and species."""

    parameters: dict[str, float] = Field(default_factory=dict)
    maps: dict[str, Expression | FileSource] = Field(default_factory=dict)
    species: dict[str, SpeciesConfig] = Field(min_length=1)

    @field_validator("parameters", "maps", "species", mode="after")
    @classmethod
    def _check_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            check_name(name)
        return value


class RunConfig(_Section):
    """A whole run, as written in one YAML file."""

    name: str = "run"
    backend: Literal["auto", "gpu", "cpu"] = "auto"
    precision: Literal["float32", "float64"] = "float32"
    grid: GridConfig
    time: TimeConfig
    output: OutputConfig = Field(default_factory=OutputConfig)
    model: ModelConfig

    _base_dir: Path = PrivateAttr(default=Path("."))

    @property
    def base_dir(self) -> Path:
        """Folder that relative file paths in this config are resolved against."""
        return self._base_dir

    def resolve_path(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self._base_dir / p

    def to_json(self) -> str:
        """The resolved config (defaults filled in), as saved with every output."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=False)

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with top-level keys changed (validated again), e.g. backend from the CLI."""
        data = self.model_dump(mode="json")
        data.update(changes)
        new = parse_config(data, source="<command line>")
        new._base_dir = self._base_dir
        return new


def check_name(name: str) -> str:
    """Refuse names that cannot be identifiers in both the expressions and generated C code."""
    if not _NAME_RE.match(name) or keyword.iskeyword(name):
        raise ValueError(f"{name!r} is not a valid name (letters, digits and _; not a keyword)")
    if name in RESERVED_NAMES:
        raise ValueError(f"{name!r} is reserved; reserved names: {', '.join(sorted(RESERVED_NAMES))}")
    return name


def _face(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        kind = value.strip().lower().replace("_", "-")
        if kind in ("no-flux", "periodic"):
            return {"kind": kind}
        raise ValueError(f"{where}: unknown boundary {value!r}; allowed: no-flux, periodic, {{value: NUMBER}}")
    if isinstance(value, dict):
        if set(value) != {"value"}:
            raise ValueError(f"{where}: a fixed-value face is written {{value: NUMBER}}, got {value!r}")
        v = value["value"]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{where}: fixed value must be a number, got {v!r}")
        return {"kind": "value", "value": float(v)}
    raise ValueError(f"{where}: unknown boundary {value!r}; allowed: no-flux, periodic, {{value: NUMBER}}")


def normalise_boundary(spec: Any) -> dict[str, dict[str, Any]]:
    """Expand a boundary spec to {axis: {"low": face, "high": face}} for x, y and z.

    Accepted forms: one face for all six ("no-flux"); a mapping axis -> face; or
    axis -> {low: face, high: face}. A face is "no-flux", "periodic" or {value: NUMBER}.
    Axes left out are no-flux. Periodic must be on both faces of an axis.
    """
    if isinstance(spec, dict) and set(spec) <= {"x", "y", "z"} and all(
        isinstance(v, dict) and set(v) == {"low", "high"} and all(isinstance(f, dict) and "kind" in f for f in v.values())
        for v in spec.values()
    ) and len(spec) == 3:
        return spec  # already normalised (a resolved config read back)
    if not isinstance(spec, dict) or set(spec) == {"value"}:
        face = _face(spec, "boundary")
        out = {a: {"low": face, "high": face} for a in AXES}
    else:
        unknown = set(spec) - set(AXES)
        if unknown:
            raise ValueError(f"unknown axis {sorted(unknown)[0]!r}; valid keys: x, y, z")
        out = {}
        for axis in AXES:
            v = spec.get(axis, "no-flux")
            if isinstance(v, dict) and set(v) & {"low", "high"}:
                extra = set(v) - {"low", "high"}
                if extra:
                    raise ValueError(f"{axis}: unknown key {sorted(extra)[0]!r}; valid keys: low, high")
                out[axis] = {
                    side: _face(v.get(side, "no-flux"), f"{axis}.{side}") for side in ("low", "high")
                }
            else:
                face = _face(v, axis)
                out[axis] = {"low": face, "high": face}
    for axis, faces in out.items():
        kinds = {faces["low"]["kind"], faces["high"]["kind"]}
        if "periodic" in kinds and kinds != {"periodic"}:
            raise ValueError(f"{axis}: periodic must be set on both faces of an axis")
    return out


# ---------------------------------------------------------------------------------------
# Loading and one-line error messages


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML config.

    Raises:
        ConfigError: missing/unreadable file, YAML syntax error, or invalid content.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {str(path)!r}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    config = parse_config(data, source=str(path))
    config._base_dir = path.resolve().parent
    return config


def parse_config(data: Any, source: str = "<config>") -> RunConfig:
    """Validate an already-parsed mapping into a RunConfig."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a config must be a mapping of keys (name, grid, time, model, ...)")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_one_line(exc)}") from None


def builtin_config_path(name: str) -> Path:
    """Path of a config shipped inside the package (configs/<name>.yaml)."""
    root = data_dir("configs")
    candidate = root / f"{name}.yaml"
    if not candidate.is_file():
        shipped = sorted(p.stem for p in root.glob("*.yaml"))
        raise ConfigError(f"no built-in config {name!r}; shipped configs: {', '.join(shipped)}")
    return candidate


def _one_line(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
    key = ".".join(str(p) for p in loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        parent_cls = _model_at(RunConfig, loc[:-1])
        valid = list(parent_cls.model_fields) if parent_cls else []
        hint = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"unknown key {key!r}{did}; valid keys: {', '.join(valid)}"
    if kind == "missing":
        return f"missing required key {key!r}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        return f"{key}: {msg[len('Value error, '):]}"
    value = err.get("input")
    shown = "" if isinstance(value, (dict, list)) else f", got {value!r}"
    return f"{key}: {msg[0].lower() + msg[1:]}{shown}"


_CONFIG_CLASSES = {"FileSource", "ChemotaxisConfig", "SpeciesConfig", "GridConfig"}


def _is_union_tag(part: Any) -> bool:
    """pydantic adds the union member it tried ('float', 'FileSource', 'literal[...]') to loc."""
    return isinstance(part, str) and (
        part in {"float", "int", "str", "bool"}
        or "[" in part
        or part.startswith("constrained-")
        or part in _CONFIG_CLASSES
    )


def _model_at(cls: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config class found by walking `loc` down from `cls` (dict keys are skipped)."""
    current: Any = cls
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = _unwrap(field.annotation)
        elif get_origin(current) is dict:
            current = _unwrap(get_args(current)[1])
        else:
            return None
    if get_origin(current) is dict:
        return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Union to the one BaseModel or dict member, if any."""
    for arg in get_args(annotation) if get_origin(annotation) in (Union, type(int | None)) else ():
        if (isinstance(arg, type) and issubclass(arg, BaseModel)) or get_origin(arg) is dict:
            return arg
    return annotation
