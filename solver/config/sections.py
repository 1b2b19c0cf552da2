"""The config's sections: validated, frozen, typed objects for every key of a run's YAML.

Public API:
    RunConfig and its sections: GridConfig, TimeConfig, OutputConfig (with
    CheckpointConfig, PicturesConfig), ModelConfig, SpeciesConfig, ChemotaxisConfig, SystemicConfig,
    PKConfig, AgentConfig, DiagnosticConfig, DoseConfig, GpuConfig
    DEFAULT_CHECKPOINTS, RESERVED_NAMES, check_name(name)

Expressions stay text here: solver/model.py parses them through the whitelist, because
which names they may use depends on the whole model.
"""

from __future__ import annotations

import json
import keyword
import math
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

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
    model_validator,
)

from solver.config.boundary import AXES, normalise_boundary
from solver.config.messages import one_line_error
from solver.config.sources import Source
from solver.config.types import Cells, Expression, KeyedValueError, Number, PositiveFloat, not_bool
from solver.errors import ConfigError
from solver.expressions import FUNCTIONS
from solver.text import shown

# Names the solver itself gives meaning to; a species, parameter or map may not take them.
RESERVED_NAMES = frozenset({"t", "x", "y", "z", "dt"} | set(FUNCTIONS))
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _max_change(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("null", "none", "off")):
        return None
    if not isinstance(value, bool) and isinstance(value, (int, float)) and 0 < value <= 1:
        return float(value)
    raise ValueError(f"must be null (off) or a number in (0, 1], got {value!r}")


def _order(value: Any) -> Literal["auto"] | int:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if not isinstance(value, bool) and isinstance(value, int) and value in (1, 2):
        return value
    raise ValueError(f"must be 1, 2 or 'auto', got {value!r}")


def _tolerance(value: Any) -> Literal["auto"] | float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("null", "none", "off")):
        return None
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if not isinstance(value, bool) and isinstance(value, (int, float)) and 0 < value < 1:
        return float(value)
    raise ValueError(f"must be 'auto', null (no error control) or a number in (0, 1), got {value!r}")


def _atol(value: Any) -> float | dict[str, float] | None:
    def number(v: Any, where: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{where}must be a number >= 0 (in the species' units), got {v!r}")
        return float(v)

    if value is None:
        return None
    if isinstance(value, dict):
        return {str(k): number(v, f"{k}: ") for k, v in value.items()}
    return number(value, "")


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


def _spacing_kind(value: Any) -> str:
    return "<per-axis>" if isinstance(value, (list, tuple)) else "<number>"


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

    @field_validator("spacing", mode="after")
    @classmethod
    def _spacing_in_float_range(cls, value: Any) -> Any:
        """Cell volumes and 1/h^2 must be finite, normal floats (1e-200 would make them 0 and inf)."""
        for h in (value,) if isinstance(value, (int, float)) else value:
            if not 1e-30 <= h <= 1e30:
                raise ValueError(f"{h!r} is out of range; allowed: [1e-30, 1e30] (choose the length unit to suit)")
        return value

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
    # 1: first order in time (forward Euler with linearly implicit sinks; imex: backward
    # Euler line solves with the sinks on their diagonal). 2: second order, an exponential
    # predictor-corrector (solver/integrators/second_order.py), about three times the work
    # per step, with an embedded error estimate. auto: 2 with imex (whose step accuracy
    # can allow), 1 with the explicit integrator (whose step the stability bound holds far
    # below what accuracy needs).
    order: Annotated[Literal["auto"] | int, BeforeValidator(_order)] = "auto"
    # Error control (order 2): a step is accepted when its estimated local error is at most
    # atol + rtol |u| in every cell of every species, else retaken smaller; the next step
    # grows or shrinks with the estimate. null: equal steps of dt. auto: DEFAULT_RTOL with
    # order 2, none with order 1 (a number with order 1 is refused). atol: null (per
    # species, rtol x 1e-3 of its largest value in the step), a number, or {species:
    # number}, in the species' units.
    rtol: Annotated[Literal["auto"] | float | None, PlainValidator(_tolerance)] = "auto"
    atol: Annotated[float | dict[str, float] | None, PlainValidator(_atol)] = None
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

    # imex with implicit_chemotaxis: the transport step's accuracy limit, the largest
    # Courant number h |v| / dx (summed over the axes) a step may take; the velocity is
    # chi |grad s| of the step's start. Backward-Euler upwind smears a front by about C
    # cells: at the default 0.05 the CD8 cells in the quickstart's tumour core come within
    # 3.2 % of a converged explicit reference (+7.7 % at C = 0.1, +65 % at C = 1), inside
    # the default rtol of 5 %. docs/numerics.md has the table.
    max_courant: Number = Field(0.05, gt=0)

    @field_validator("implicit_chemotaxis", mode="after")
    @classmethod
    def _chemotaxis_needs_imex(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("integrator") == "explicit":
            raise ValueError("needs time.integrator: imex (or auto); the explicit integrator has no implicit part")
        return value

    @property
    def resolved_order(self) -> int:
        """The order of the run: `order`, with auto decided by the integrator later (2 here:
        the plan refines it once the integrator is known)."""
        return 2 if self.order == "auto" else int(self.order)


class CheckpointConfig(_Section):
    """When a run writes a checkpoint into DIR/checkpoints/ (solver/io/checkpoint.py).

    A checkpoint is written at the first time-series or snapshot record at which any
    of the given intervals has passed since the last one (steps, simulated time, or
    wall-clock seconds); checkpoints land on records so that a resumed run repeats the
    uninterrupted run's steps exactly. The newest `keep` are kept. A run stopped by
    SIGINT or SIGTERM writes one regardless.
    """

    every_steps: Annotated[int, BeforeValidator(not_bool), Field(ge=1)] | None = None
    every_time: PositiveFloat | None = None
    every_seconds: PositiveFloat | None = None
    keep: Annotated[int, BeforeValidator(not_bool), Field(ge=1)] = 2


# Without an `output.checkpoint` section: one checkpoint every 30 minutes of wall-clock time.
DEFAULT_CHECKPOINTS = CheckpointConfig(every_seconds=1800.0)


# Names of the run's fields and time series while a RunConfig is validated (set by its
# wrap validator): `output` is validated before `model`, so PicturesConfig reads them here.
_PICTURE_NAMES: ContextVar[tuple[list[str], list[str]] | None] = ContextVar("picture_names", default=None)


def _run_names(data: Any) -> tuple[list[str], list[str]] | None:
    """(fields, time series) a run of the raw config `data` has; None when it is not readable
    (its own validation then says why). Series are named as solver/run/simulation.py records them."""
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("species"), dict):
        return None

    def keys(name: str) -> list[str]:
        value = model.get(name)
        return [str(k) for k in value] if isinstance(value, dict) else []

    species = keys("species")
    series = [f"{k}_{n}" for n in species for k in ("total", "min", "max")]
    series += keys("systemic") + keys("globals") + keys("diagnostics")
    agents = model.get("agents") if isinstance(model.get("agents"), dict) else {}
    series += [f"plasma_{a}" if isinstance(v, dict) and v.get("pk") is not None else f"rate_{a}"
               for a, v in agents.items()]
    return species + keys("maps"), series


class PicturesConfig(_Section):
    """What the pictures drawn at the end of a run show (solver/viz/pictures.py picks what is
    left out by model and grid): `fields` drawn in space (species or maps), `series` the time
    series panels, `slices` how fields are drawn (auto: a profile over time on a 1-D grid,
    two of its dimensions <= 4 cells; a heat map on a 2-D grid, one dimension of 1 cell;
    orthogonal slices and an isosurface on a 3-D grid), `log` names drawn on a log scale."""

    fields: list[str] | None = Field(None, min_length=1)
    series: list[str] | None = Field(None, min_length=1)
    slices: Literal["auto", "profile", "map", "orthogonal"] = "auto"
    log: list[str] = Field(default_factory=list)

    @field_validator("fields", "series", "log", mode="after")
    @classmethod
    def _known_names(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        names = _PICTURE_NAMES.get()
        if names is None or not value:
            return value
        fields, series = names
        allowed = {"fields": fields, "series": series, "log": fields + series}[info.field_name]
        unknown = [n for n in value if n not in allowed]
        if unknown:
            what = {"fields": "field", "series": "time series", "log": "field or time series"}[info.field_name]
            raise ValueError(f"unknown {what} {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")
        return value


def _pictures_kind(value: Any) -> str:
    return "<mapping>" if isinstance(value, (dict, PicturesConfig)) else "<bool>"  # a section when serialised


def _pictures_flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true, false or a mapping with keys {', '.join(PicturesConfig.model_fields)}, "
                         f"got {shown(value)}")
    return value


Pictures = Annotated[
    Annotated[bool, PlainValidator(_pictures_flag), Tag("<bool>")] | Annotated[PicturesConfig, Tag("<mapping>")],
    Discriminator(_pictures_kind),
]


class OutputConfig(_Section):
    """Where and how often a run writes; times are simulated time, check_every is steps.

    `checkpoint: null` turns periodic checkpoints off (a signal still writes one).
    """

    dir: str | None = None
    snapshot_every: PositiveFloat | None = None
    series_every: PositiveFloat | None = None
    check_every: Annotated[int, BeforeValidator(not_bool), Field(ge=1)] = 100
    # Snapshots in run.h5 (written off the step loop: solver/io/run_writer.py). Measured with
    # benchmarks/io_overhead.py --write-speed 64 128 on an Intel Xeon Processor, 2 cores, no
    # GPU; the de Pillis case (7 species, float32), nearly uniform fields: gzip 270-275 MB/s
    # at 0.002 of the raw size, lzf 530-560 MB/s at 0.012, none 850-930 MB/s. gzip stays the
    # default: the smallest files, and its time is hidden behind the stepping.
    compression: Literal["gzip", "lzf", "none"] = "gzip"
    # At the end of a run: a PNG of the final state and a plot of the time series
    # (needs the `viz` extra; skipped with a note when it is not installed); a mapping
    # chooses what they show (PicturesConfig), true their defaults.
    pictures: Pictures = True
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
                        raise KeyedValueError(
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
    with rates k12, k21 (volume_peripheral V2). Three: a second peripheral compartment
    with k13, k31 (volume_peripheral2 V3). Give `k_el` or `half_life` (= ln 2 / k_el).
    Every value may be an expression of the model's parameters (e.g. CL / V1).
    """

    model: Literal["one", "two", "three"] = "one"
    volume: Expression = 1.0
    k_el: Expression | None = None
    half_life: Expression | None = None
    k12: Expression | None = None
    k21: Expression | None = None
    volume_peripheral: Expression | None = None
    k13: Expression | None = None
    k31: Expression | None = None
    volume_peripheral2: Expression | None = None


class AgentConfig(_Section):
    """A treatment agent. Its name in expressions is its plasma concentration when it has
    `pk`, else the current infusion rate of its schedule (e.g. adoptive T-cell transfer)."""

    pk: PKConfig | None = None
    units: str = ""  # of its plasma level with pk, else of its infusion rate
    dose_units: str = ""  # of a treatment entry's `dose` (bolus); `dose_rate` is that per time unit


class ModelUnitsConfig(_Section):
    """The units a model's numbers are written in: `time` and `length` (of every rate and
    diffusion coefficient) and the unit of each parameter (pint syntax: 1/day, um^2/day,
    cells/mL, 1/(cell day)). A config in other units of time or length gets the model
    converted into its own (solver/model_units.py)."""

    time: str = ""
    length: str = ""
    parameters: dict[str, str] = Field(default_factory=dict)


class DiagnosticConfig(_Section):
    """A scalar recorded in the time series: the `integral` or `mean` of an expression over
    the cells where `where` holds, or `auc_of` another diagnostic (trapezoid over records)."""

    integral: Expression | None = None
    mean: Expression | None = None
    where: str | None = None
    auc_of: str | None = None
    units: str = ""


class GlobalConfig(_Section):
    """A scalar recomputed from the fields at every stage of every step: the `integral` of
    an expression over the domain (sum of value * cell volume), or a `value` computed from
    the globals listed before it and the parameters (in float64 on the host, so a ratio of
    large integrals never overflows a float32 kernel). Reactions and definitions use it by
    name (e.g. a tumour's total cell count and effective volume, which a well-mixed
    interaction law needs)."""

    integral: Expression | None = None
    value: Expression | None = None
    units: str = ""

    @model_validator(mode="after")
    def _one_kind(self) -> GlobalConfig:
        if (self.integral is None) == (self.value is None):
            raise ValueError("give exactly one of integral (over the domain) or value (of earlier globals)")
        return self


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
    globals: dict[str, GlobalConfig] = Field(default_factory=dict)
    units: ModelUnitsConfig | None = None

    @field_validator("parameters", "maps", "definitions", "species", "systemic", "agents", "diagnostics", "globals",
                     mode="after")
    @classmethod
    def _check_names(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        what = {"parameters": "parameter", "maps": "map", "definitions": "definition", "species": "species", "systemic": "systemic",
                "agents": "agent", "diagnostics": "diagnostic", "globals": "global"}[info.field_name]
        for name in value:
            try:
                check_name(name)
            except ValueError as exc:
                raise ValueError(f"{what} name {exc}") from None
        return value


class DoseConfig(_Section):
    """One treatment entry: a bolus (`dose`) or an infusion (`dose_rate` for `duration`),
    from `start`, repeated `count` times `every` (solver.systemic.schedule). With
    `per_m2: true` the dose (or rate) is per m^2 of body surface area, as oncology doses
    are written (doxorubicin 60 mg/m^2), and is multiplied by the model parameter
    `body_surface_area`."""

    agent: str
    kind: Literal["bolus", "infusion"]
    dose: Number | None = None
    dose_rate: Number | None = None
    duration: Number | None = None
    start: Number = 0.0
    every: Number | None = None
    count: Annotated[int, BeforeValidator(not_bool)] = 1
    per_m2: bool = False


class GpuConfig(_Section):
    """Options of the GPU (CuPy) backend; the CPU backends ignore them.

    fast_math: float32 kernels use the CUDA intrinsics (__fdividef, __expf, __logf,
    __powf), flush denormals to zero (--ftz=true) and regroup the stencil's sums. Each
    step then differs from the exact-math step by a few float32 ulp of the fields
    (solver/backends/cuda_codegen.py, fast_math_error_bound), far below the time
    discretisation error. float64 kernels always use exact math.
    """

    fast_math: StrictBool = True


class RunConfig(_Section):
    """A whole run, as written in one YAML file."""

    name: str = "run"
    backend: Literal["auto", "gpu", "cpu", "numpy"] = "auto"  # solver/backends/registry.py
    precision: Literal["float32", "float64"] = "float32"
    grid: GridConfig
    time: TimeConfig
    output: OutputConfig = Field(default_factory=OutputConfig)
    model: ModelConfig
    treatment: list[DoseConfig] = Field(default_factory=list)
    gpu: GpuConfig = Field(default_factory=GpuConfig)

    _base_dir: Path = PrivateAttr(default=Path("."))

    @model_validator(mode="wrap")
    @classmethod
    def _with_picture_names(cls, data: Any, handler: Any) -> RunConfig:
        token = _PICTURE_NAMES.set(_run_names(data))
        try:
            return handler(data)
        finally:
            _PICTURE_NAMES.reset(token)

    @field_validator("name", mode="after")
    @classmethod
    def _check_run_name(cls, value: str) -> str:
        if not _RUN_NAME_RE.match(value):
            raise ValueError(
                f"{shown(value, 60)} is not allowed: it names the output folder, so use 1 to 100 letters, "
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
        try:
            new = RunConfig.model_validate(data)  # the model section is already expanded
        except ValidationError as exc:
            raise ConfigError(f"<command line>: {one_line_error(exc, RunConfig)}") from None
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
