"""Run configuration: YAML -> validated, frozen, typed config objects.

Public API:
    load_config(path) -> RunConfig      read a YAML file (safe loader) and validate it
    parse_config(data, source) -> RunConfig
    builtin_config_path(name) -> Path   a config shipped with the package (e.g. "quickstart")
    RunConfig and its sections: GridConfig, TimeConfig, OutputConfig (with
    CheckpointConfig), ModelConfig, SpeciesConfig, ChemotaxisConfig, FileSource.

Validation is done by pydantic; its errors are turned into ONE line that names the
key, the value and what is allowed (unknown keys list the valid keys). Expressions
stay text here: solver.model parses them through the whitelist, because which names
they may use depends on the whole model.
"""

from __future__ import annotations

import difflib
import json
import keyword
import math
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    PrivateAttr,
    StrictBool,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from solver.errors import ConfigError
from solver.expressions import FUNCTIONS
from solver.package_data import data_dir

# Names the solver itself gives meaning to; a species, parameter or map may not take them.
RESERVED_NAMES = frozenset({"t", "x", "y", "z", "dt"} | set(FUNCTIONS))
AXES = ("x", "y", "z")
FACE_KINDS = ("no-flux", "periodic", "value", "permeable")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_PERMEABLE_FORM = "{permeable: {permeability: NUMBER >= 0, value: NUMBER}}"
_FACES_ALLOWED = "no-flux, periodic, {value: NUMBER}, " + _PERMEABLE_FORM


class _KeyedValueError(ValueError):
    """A ValueError about a sub-key of the field being validated (e.g. boundary -> x.low)."""

    def __init__(self, subkey: str, message: str) -> None:
        super().__init__(message)
        self.subkey = subkey


def _not_bool(value: Any) -> Any:
    # pydantic's lax mode would read `true` as 1; a bool where a number belongs is a mistake.
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")  # noqa: TRY004 (pydantic needs it)
    return value


def _expression(value: Any) -> float | int | str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(  # noqa: TRY004 (pydantic turns only ValueError into a validation error)
            f"expected a number or an expression in quotes, got {value!r}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return value


def _max_change(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("null", "none", "off")):
        return None
    if not isinstance(value, bool) and isinstance(value, (int, float)) and 0 < value <= 1:
        return float(value)
    raise ValueError(f"must be null (off) or a number in (0, 1], got {value!r}")


def _time_step(value: Any) -> Literal["auto"] | float:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    number: float | None = None
    if not isinstance(value, bool) and isinstance(value, (int, float, str)):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not (math.isfinite(number) and number > 0):
        raise ValueError(f"must be 'auto' or a number > 0, got {value!r}")
    return number


Number = Annotated[float, BeforeValidator(_not_bool)]
PositiveFloat = Annotated[Number, Field(gt=0)]
Cells = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=65536)]
# A number, or text parsed later by solver.expressions (never eval'd).
Expression = Annotated[float | int | str, PlainValidator(_expression)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class FileSource(_Section):
    """An array read from a file: .npy, or .h5/.hdf5 with a dataset name."""

    file: str
    dataset: str | None = None


class VesselSource(_Section):
    """A generated vessel map: {vessels: {kind: network, seed: 1, ...}} (solver.vasculature)."""

    vessels: dict[str, Any]


class TumourSource(_Section):
    """An initial tumour: {tumour: {kind: sphere, radius: 300, density: 1e8}} (solver.tumour_shapes)."""

    tumour: dict[str, Any]


_SOURCE_KINDS = {"file": "<file>", "vessels": "<vessels>", "tumour": "<tumour>"}


def _source_kind(value: Any) -> str:
    if isinstance(value, FileSource):
        return "<file>"
    if isinstance(value, (VesselSource, TumourSource)):
        return "<vessels>" if isinstance(value, VesselSource) else "<tumour>"
    if isinstance(value, dict):
        for key, tag in _SOURCE_KINDS.items():
            if key in value:
                return tag
        return "<file>"  # reports the missing `file` key and the valid keys
    return "<expression>"


def _spacing_kind(value: Any) -> str:
    return "<per-axis>" if isinstance(value, (list, tuple)) else "<number>"


# Union members are tagged with names that cannot be config keys, so that error
# locations can drop them (see _is_union_tag).
Source = Annotated[
    Annotated[Expression, Tag("<expression>")]
    | Annotated[FileSource, Tag("<file>")]
    | Annotated[VesselSource, Tag("<vessels>")]
    | Annotated[TumourSource, Tag("<tumour>")],
    Discriminator(_source_kind),
]
Spacing = Annotated[
    Annotated[PositiveFloat, Tag("<number>")]
    | Annotated[tuple[PositiveFloat, PositiveFloat, PositiveFloat], Tag("<per-axis>")],
    Discriminator(_spacing_kind),
]


class GridConfig(_Section):
    """Cell-centred Cartesian grid: cell (i,j,k) has centre ((i+1/2)hx, (j+1/2)hy, (k+1/2)hz)."""

    shape: tuple[Cells, Cells, Cells]
    spacing: Spacing = 1.0
    length_unit: str = ""

    @property
    def spacing3(self) -> tuple[float, float, float]:
        s = self.spacing
        return (float(s), float(s), float(s)) if isinstance(s, (int, float)) else tuple(s)


class TimeConfig(_Section):
    """Simulated time span and step control."""

    end: PositiveFloat
    dt: Annotated[Literal["auto"] | float, PlainValidator(_time_step)] = "auto"
    safety: Number = Field(0.9, gt=0, le=1)
    # explicit: forward Euler. imex: the same step with the diffusion of fast species
    # (drugs, oxygen) solved implicitly (LOD line solves). auto: imex when that lets dt
    # grow at least 10x over the explicit stability bound, else explicit (the log says why).
    integrator: Literal["explicit", "imex", "auto"] = "auto"
    # 1: first order in time. 2: second order: Heun with modified-Patankar sinks, and for
    # imex Strang splitting around Crank-Nicolson (solver/integrators/second_order.py);
    # about twice the work per step.
    order: Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=2)] = 1
    # imex: also solve cell transport implicitly, diffusion and upwind chemotaxis together
    # with the chemoattractant of the step's start (for species whose faces are all
    # no-flux or permeable), when that lifts dt; off: chemotaxis stays explicit. Then only
    # the reactions bound dt, by stability, far above what accuracy allows: a fixed dt
    # is required (the quickstart kept within 0.8 % of explicit at dt 0.025 day, order 2).
    implicit_chemotaxis: StrictBool = False
    # Step-size control: a step in which a species stepped explicitly (for imex: the cell
    # populations) changes by more than this fraction of its value (below 1e-3 of its
    # maximum: of that) is retaken with half the step; dt is then the largest step.
    # null (default): equal steps of dt. On the de Pillis quickstart it bought no accuracy
    # (benchmarks/RESULTS.md), so it is opt-in.
    max_change: Annotated[float | None, PlainValidator(_max_change)] = None
    # explicit: forward Euler for the reactions too. linearly-implicit: each species' own
    # sink rate lambda = max(0, -dR_i/du_i) is taken implicitly, u_new = u + dt F / (1 + dt
    # lambda), so stiff decay and vessel exchange (P S/V w, up to 1e5/day) do not bound dt.
    # auto: linearly-implicit with imex (diffusion, decay and vessel exchange implicit),
    # explicit with the explicit integrator.
    reactions: Literal["explicit", "linearly-implicit", "auto"] = "auto"
    unit: str = ""

    @field_validator("implicit_chemotaxis", mode="after")
    @classmethod
    def _chemotaxis_needs_a_fixed_dt(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("integrator") == "explicit":
            raise ValueError("needs time.integrator: imex (or auto); the explicit integrator has no implicit part")
        if value and info.data.get("dt") == "auto":
            raise ValueError(
                "needs a fixed time.dt: with cell transport implicit only the reactions bound dt, by "
                "stability, far above what accuracy allows; choose dt by halving it until the results "
                "stop changing (e.g. 0.025 day with order: 2 on the de Pillis quickstart)"
            )
        return value


class CheckpointConfig(_Section):
    """When a run writes a checkpoint into DIR/checkpoints/ (solver/io/checkpoint.py).

    A checkpoint is written at the first time-series or snapshot record at which any
    of the given intervals has passed since the last one (steps, simulated time, or
    wall-clock seconds); checkpoints land on records so that a resumed run repeats the
    uninterrupted run's steps exactly. The newest `keep` are kept. A run stopped by
    SIGINT or SIGTERM writes one regardless.
    """

    every_steps: Annotated[int, BeforeValidator(_not_bool), Field(ge=1)] | None = None
    every_time: PositiveFloat | None = None
    every_seconds: PositiveFloat | None = None
    keep: Annotated[int, BeforeValidator(_not_bool), Field(ge=1)] = 2


# Without an `output.checkpoint` section: one checkpoint every 30 minutes of wall-clock time.
DEFAULT_CHECKPOINTS = CheckpointConfig(every_seconds=1800.0)


class OutputConfig(_Section):
    """Where and how often a run writes; times are simulated time, check_every is steps.

    `checkpoint: null` turns periodic checkpoints off (a signal still writes one).
    """

    dir: str | None = None
    snapshot_every: PositiveFloat | None = None
    series_every: PositiveFloat | None = None
    check_every: Annotated[int, BeforeValidator(_not_bool), Field(ge=1)] = 100
    compression: Literal["gzip", "lzf", "none"] = "gzip"
    # At the end of a run: a PNG of the final state and a plot of the time series
    # (needs the `viz` extra; skipped with a note when it is not installed).
    pictures: StrictBool = True
    checkpoint: CheckpointConfig | None = DEFAULT_CHECKPOINTS


class ChemotaxisConfig(_Section):
    """Flux chi * u * grad(signal): the species moves up the gradient of `signal`."""

    signal: str
    sensitivity: Expression


class SpeciesConfig(_Section):
    """One field on the grid: du/dt = D lap u - div(chi u grad s) + reaction."""

    diffusion: Expression = 0.0
    reaction: Expression = 0.0
    initial: Source = 0.0
    # validate_default: the default is normalised too, so every species holds the
    # {axis: {side: face}} form that solver.grid.BoundaryConditions.from_config reads.
    boundary: Any = Field("no-flux", validate_default=True)
    chemotaxis: ChemotaxisConfig | None = None
    nonnegative: StrictBool = True
    units: str = ""

    @field_validator("boundary", mode="before")
    @classmethod
    def _normalise_boundary(cls, value: Any) -> dict[str, dict[str, Any]]:
        return normalise_boundary(value)

    @field_validator("boundary", mode="after")
    @classmethod
    def _permeable_needs_diffusion(cls, value: dict[str, dict[str, Any]], info: ValidationInfo) -> dict[str, dict[str, Any]]:
        """A permeable face exchanges through the diffusive flux at the face: refuse it on a
        species whose diffusion is written as 0 (one given as an expression that comes to 0
        is not known here; solver.grid.FaceBC.ghost_coefficients then makes the face no-flux)."""
        d = info.data.get("diffusion")
        if isinstance(d, (int, float)) and not isinstance(d, bool) and d == 0:
            for axis in AXES:
                for side in ("low", "high"):
                    if value[axis][side]["kind"] == "permeable":
                        raise _KeyedValueError(
                            f"{axis}.{side}",
                            "a permeable face needs diffusion > 0 (the exchange P (g - u) is "
                            "carried by the diffusive flux at the face); this species has diffusion 0",
                        )
        return value


class SystemicConfig(_Section):
    """A systemic scalar y (e.g. circulating lymphocytes): dy/dt = rate(t, systemic, agents)."""

    initial: Expression
    rate: Expression
    units: str = ""


class PKConfig(_Section):
    """Plasma pharmacokinetics of an agent (solver.systemic.pk): concentration = amount / volume.

    One compartment: dX/dt = -k_el X + R(t)/V. Two: a peripheral compartment exchanging
    with rates k12, k21 (volume_peripheral V2). Give `k_el` or `half_life` (= ln 2 / k_el).
    """

    model: Literal["one", "two"] = "one"
    volume: Expression = 1.0
    k_el: Expression | None = None
    half_life: Expression | None = None
    k12: Expression | None = None
    k21: Expression | None = None
    volume_peripheral: Expression | None = None


class AgentConfig(_Section):
    """A treatment agent. Its name in expressions is its plasma concentration when it has
    `pk`, else the current infusion rate of its schedule (e.g. adoptive T-cell transfer)."""

    pk: PKConfig | None = None
    units: str = ""


class DiagnosticConfig(_Section):
    """A scalar recorded in the time series: the `integral` or `mean` of an expression over
    the cells where `where` holds, or `auc_of` another diagnostic (trapezoid over records)."""

    integral: Expression | None = None
    mean: Expression | None = None
    where: str | None = None
    auc_of: str | None = None
    units: str = ""


class ModelConfig(_Section):
    """A model written as data: parameters, static maps, species, systemic scalars, agents.

    `builtin: NAME` starts from a model shipped with tumorsim (solver/models/NAME.yaml),
    `variant` picks one of its parameter sets; every other key overrides it key by key.
    """

    builtin: str | None = None
    variant: str | None = None
    parameters: dict[str, Number] = Field(default_factory=dict)
    maps: dict[str, Source] = Field(default_factory=dict)
    # Named intermediate expressions (e.g. the CD8 kill rate), usable in reactions and
    # diagnostics and in later definitions; substituted symbolically, so both backends
    # still compute one fused expression (common subexpressions are shared).
    definitions: dict[str, Expression] = Field(default_factory=dict)
    species: dict[str, SpeciesConfig] = Field(min_length=1)
    systemic: dict[str, SystemicConfig] = Field(default_factory=dict)
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    diagnostics: dict[str, DiagnosticConfig] = Field(default_factory=dict)

    @field_validator("parameters", "maps", "definitions", "species", "systemic", "agents", "diagnostics", mode="after")
    @classmethod
    def _check_names(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        what = {"parameters": "parameter", "maps": "map", "definitions": "definition", "species": "species", "systemic": "systemic",
                "agents": "agent", "diagnostics": "diagnostic"}[info.field_name]
        for name in value:
            try:
                check_name(name)
            except ValueError as exc:
                raise ValueError(f"{what} name {exc}") from None
        return value


class DoseConfig(_Section):
    """One treatment entry: a bolus (`dose`) or an infusion (`dose_rate` for `duration`),
    from `start`, repeated `count` times `every` (solver.systemic.schedule)."""

    agent: str
    kind: Literal["bolus", "infusion"]
    dose: Number | None = None
    dose_rate: Number | None = None
    duration: Number | None = None
    start: Number = 0.0
    every: Number | None = None
    count: Annotated[int, BeforeValidator(_not_bool)] = 1


class RunConfig(_Section):
    """A whole run, as written in one YAML file."""

    name: str = "run"
    backend: Literal["auto", "gpu", "cpu"] = "auto"
    precision: Literal["float32", "float64"] = "float32"
    grid: GridConfig
    time: TimeConfig
    output: OutputConfig = Field(default_factory=OutputConfig)
    model: ModelConfig
    treatment: list[DoseConfig] = Field(default_factory=list)

    _base_dir: Path = PrivateAttr(default=Path("."))

    @field_validator("name", mode="after")
    @classmethod
    def _check_run_name(cls, value: str) -> str:
        if not _RUN_NAME_RE.match(value):
            raise ValueError(
                f"{value!r} is not allowed: it names the output folder, so use 1 to 100 letters, "
                "digits, '.', '_' or '-', starting with a letter or digit"
            )
        return value

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
    if not isinstance(name, str) or not _NAME_RE.match(name) or keyword.iskeyword(name):
        raise ValueError(
            f"{name!r} is not a valid name: use letters, digits and _, not starting with a digit, "
            "and not a Python keyword"
        )
    if name in RESERVED_NAMES:
        raise ValueError(
            f"{name!r} is reserved; reserved names: {', '.join(sorted(RESERVED_NAMES))}"
        )
    return name


def _face(value: Any, where: str) -> dict[str, Any]:
    """One face as {"kind": ...} (plus "value" for a fixed-value face, "value" and
    "permeability" for a permeable one)."""
    if isinstance(value, str):
        kind = value.strip().lower().replace("_", "-")
        if kind in ("no-flux", "periodic"):
            return {"kind": kind}
        raise _KeyedValueError(where, f"unknown boundary {value!r}; allowed: {_FACES_ALLOWED}")
    if isinstance(value, dict) and "kind" in value:  # the normalised form, read back
        kind = value["kind"]
        if kind == "value" and set(value) == {"kind", "value"}:
            return _face({"value": value["value"]}, where)
        if kind == "permeable" and set(value) == {"kind", "value", "permeability"}:
            return _face({"permeable": {k: value[k] for k in ("permeability", "value")}}, where)
        if kind in ("no-flux", "periodic") and set(value) == {"kind"}:
            return {"kind": kind}
        raise _KeyedValueError(where, f"unknown boundary {value!r}; allowed: {_FACES_ALLOWED}")
    if isinstance(value, dict) and "permeable" in value:
        return _permeable_face(value, where)
    if isinstance(value, dict):
        if set(value) != {"value"}:
            raise _KeyedValueError(
                where, f"a fixed-value face is written {{value: NUMBER}}, got {value!r}"
            )
        v = value["value"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise _KeyedValueError(where, f"a fixed value must be a finite number, got {v!r}")
        return {"kind": "value", "value": float(v)}
    raise _KeyedValueError(where, f"unknown boundary {value!r}; allowed: {_FACES_ALLOWED}")


def _permeable_face(value: dict[str, Any], where: str) -> dict[str, Any]:
    """{permeable: {permeability: P, value: g}} -> {"kind": "permeable", "value": g, "permeability": P}.

    Exchange with an outside reservoir at concentration g through a wall of permeability
    P (length / time, in the grid's length unit and the model's time unit): inward flux
    P (g - u_face). P = 0 is allowed and is exactly no-flux.
    """
    spec = value["permeable"]
    if set(value) != {"permeable"} or not isinstance(spec, dict) or set(spec) != {"permeability", "value"}:
        raise _KeyedValueError(where, f"a permeable face is written {_PERMEABLE_FORM}, got {value!r}")
    p, g = spec["permeability"], spec["value"]
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or p < 0:
        raise _KeyedValueError(where, f"a permeability must be a finite number >= 0, got {p!r}")
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g):
        raise _KeyedValueError(where, f"a permeable face's outside value must be a finite number, got {g!r}")
    return {"kind": "permeable", "value": float(g), "permeability": float(p)}


def _is_face(value: Any) -> bool:
    return not isinstance(value, dict) or "value" in value or "kind" in value or "permeable" in value


def normalise_boundary(spec: Any) -> dict[str, dict[str, Any]]:
    """Expand a boundary spec to {axis: {"low": face, "high": face}} for x, y and z.

    Accepted forms: one face for all six ("no-flux"); a mapping axis -> face; or
    axis -> {low: face, high: face}. A face is "no-flux", "periodic", {value: NUMBER} or
    {permeable: {permeability: P, value: g}} (the normalised {kind: ..., value: ...,
    permeability: ...} form is read back as well).
    Axes and sides left out are no-flux. Periodic must be on both faces of an axis.
    """
    if _is_face(spec):
        face = _face(spec, "")
        out = {a: {"low": face, "high": face} for a in AXES}
    else:
        unknown = [k for k in spec if k not in AXES]
        if unknown:
            raise ValueError(
                f"unknown key {unknown[0]!r}; valid keys: x, y, z (or one face for all: {_FACES_ALLOWED})"
            )
        out = {}
        for axis in AXES:
            v = spec.get(axis, "no-flux")
            if _is_face(v):
                face = _face(v, axis)
                out[axis] = {"low": face, "high": face}
                continue
            extra = [k for k in v if k not in ("low", "high")]
            if extra:
                raise _KeyedValueError(axis, f"unknown key {extra[0]!r}; valid keys: low, high")
            out[axis] = {
                side: _face(v.get(side, "no-flux"), f"{axis}.{side}") for side in ("low", "high")
            }
    for axis, faces in out.items():
        low, high = faces["low"]["kind"], faces["high"]["kind"]
        if (low == "periodic") != (high == "periodic"):
            raise _KeyedValueError(
                axis,
                f"periodic on one face only (low: {low}, high: {high}); "
                "periodic must be set on both faces of an axis",
            )
    return out


# ---------------------------------------------------------------------------------------
# Loading and one-line error messages


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key written twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: SafeLoader reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is written twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# PyYAML follows YAML 1.1, where 1e-3 and 7.5e8 (no dot or no exponent sign) are strings.
# Researchers write them all the time: resolve them as floats, as YAML 1.2 does.
_UniqueKeyLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:float"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse YAML safely (no Python objects), refusing duplicate keys, 1e-3 read as a float."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML config (safe loader: no Python objects are built).

    Raises:
        ConfigError: missing/unreadable file, YAML syntax error, or invalid content.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config {str(path)!r} is a folder; expected a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {str(path)!r}: {_first_line(str(exc))}") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: YAML syntax error{where}: {_first_line(problem)}") from None
    config = parse_config(data, source=str(path))
    config._base_dir = path.resolve().parent
    return config


def parse_config(data: Any, source: str = "<config>") -> RunConfig:
    """Validate an already-parsed mapping into a RunConfig.

    Raises:
        ConfigError: one line naming the key, the value and what is allowed.
    """
    if not isinstance(data, dict):
        got = "an empty file" if data is None else _shown(data)
        raise ConfigError(
            f"{source}: a config must be a mapping of keys ({', '.join(RunConfig.model_fields)}), "
            f"got {got}"
        )
    data = _with_builtin_model(data, source)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_one_line(exc)}") from None


def _with_builtin_model(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Expand `model: NAME` / `model: {builtin: NAME, variant: V, ...}` into the full model."""
    model = data.get("model")
    if isinstance(model, str):
        model = {"builtin": model}
    if not isinstance(model, dict) or model.get("builtin") is None:
        return data
    from solver.models import builtin_model

    try:
        base = builtin_model(str(model["builtin"]), model.get("variant"))
    except ConfigError as exc:
        raise ConfigError(f"{source}: model.{exc}") from None
    overrides = {k: v for k, v in model.items() if k not in ("builtin", "variant")}
    return {**data, "model": deep_merge(base, overrides)}


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` applied key by key (mappings merge, anything else replaces)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def builtin_config_path(name: str) -> Path:
    """Path of a config shipped inside the package (configs/<name>.yaml)."""
    root = data_dir("configs")
    candidate = root / f"{name}.yaml"
    if not candidate.is_file():
        shipped = sorted(p.stem for p in root.glob("*.yaml"))
        raise ConfigError(f"no built-in config {name!r}; shipped configs: {', '.join(shipped)}")
    return candidate


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _shown(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _format_key(loc: tuple[Any, ...]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(top level)"


def _pick_error(exc: ValidationError) -> dict[str, Any]:
    """The error to report: an unknown key first (a misspelt key also makes one 'missing')."""
    errors = exc.errors(include_url=False)
    for err in errors:
        if err["type"] == "extra_forbidden":
            return err
    return errors[0]


def _one_line(exc: ValidationError) -> str:
    err = _pick_error(exc)
    loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
    key = _format_key(loc)
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        parent_cls = _model_at(RunConfig, loc[:-1])
        valid = list(parent_cls.model_fields) if parent_cls else []
        name = str(loc[-1])
        hint = (
            difflib.get_close_matches(name, valid, n=1)
            or [v for v in valid if name and (v.startswith(name) or name.startswith(v))][:1]
        )
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"unknown key {key!r}{did}; valid keys: {', '.join(valid)}"
    if kind == "missing" and loc and isinstance(loc[-1], int):
        return f"{_format_key(loc[:-1])}: expected 3 values [x, y, z], got {_shown(value)}"
    if kind in ("too_short", "too_long") and isinstance(value, dict):
        least = (err.get("ctx") or {}).get("min_length", 1)
        return (
            f"{key}: needs at least {least} entr{'y' if least == 1 else 'ies'}, got {_shown(value)}"
        )
    if kind in ("too_short", "too_long", "tuple_type"):
        return f"{key}: expected 3 values [x, y, z], got {_shown(value)}"
    if "[key]" in err["loc"] or kind == "invalid_key":
        parent = loc[:-1]
        where = f" in {_format_key(parent)!r}" if parent else ""
        return f"key {_shown(value)}{where} is not valid: keys are names (text)"
    if kind == "missing":
        return f"missing required key {key!r}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        cls = _model_at(RunConfig, loc)
        keys = f" with keys {', '.join(cls.model_fields)}" if cls else ""
        return f"{key}: expected a mapping{keys}, got {_shown(value)}"
    error = (err.get("ctx") or {}).get("error")
    if isinstance(error, _KeyedValueError) and error.subkey:
        key = f"{key}.{error.subkey}"
    msg = _first_line(err["msg"])
    if msg.startswith("Value error, "):
        return f"{key}: {msg[len('Value error, ') :]}"
    msg = msg[0].lower() + msg[1:]
    return f"{key}: {msg}, got {_shown(value)}"


def _is_union_tag(part: Any) -> bool:
    """Parts of an error location that are not config keys.

    The union members of these sections are tagged '<...>' (a name no key can have);
    pydantic adds '[key]' when a mapping key itself is invalid.
    """
    return isinstance(part, str) and (
        (part.startswith("<") and part.endswith(">")) or part == "[key]"
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
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated and Optional/Union down to the one BaseModel or dict member, if any."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        for arg in get_args(annotation):
            arg = _unwrap(arg)
            if (isinstance(arg, type) and issubclass(arg, BaseModel)) or get_origin(arg) is dict:
                return arg
    return annotation
