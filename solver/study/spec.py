"""The study file: its schema (frozen pydantic sections, unknown keys refused) and loading.

Public API:
    load_study(source, base_dir=None) -> Study    a study file (path) or an inline mapping
    Study                    the validated spec, the base config's mapping and where it came from
    StudySpec and its sections: VaryEntry, Distribution, Replicates, OutcomeSpec,
        LocalClusterSpec, SlurmClusterSpec, ReportSpec, CohortSpec, ResponseSpec
    read_spec(source, schema, base_dir=None) -> (spec, where, folder, text)
                             a YAML file (or mapping) validated against a schema, one-line errors
    load_base(base, folder, where) -> (mapping, folder, source)    the base config of a study
    OUTCOME_KINDS            the reductions an outcome may use (solver/study/outcomes.py)
    SAMPLING_DESIGNS         random, latin-hypercube, sobol

A study file (docs/studies.md documents every key):

    name: timing-dose
    base: ../quickstart.yaml            # a config file (relative to the study file), a shipped
                                        # config name, or an inline config mapping
    set: {output.pictures: false}       # `--set` overrides given to every member
    vary:                               # NAME: how its values are made
      offset: {values: [-1, 0, 1]}      # a study variable, usable in `derive`
      dose: {key: "treatment[chemo].dose_rate", linspace: [0.5, 2.0, 4]}
      treatment[chemo].duration: {values: [0.5, 1.0]}    # a config key names itself
    derive: {treatment[il2].start: "1.0 + offset"}       # whitelisted expressions
    combine: product                    # product | zip | random | latin-hypercube | sobol
    replicates: 1                       # or {count: 3, keys: [model.maps.w.vessels.seed]}
    cohort: {size: 16, around: [patient9, patient10], parameters: [a, d]}   # virtual patients
    outcomes: {...}                     # added to the built-in model's defaults, by name
    cluster: {kind: local}              # or {kind: slurm, queue: ..., ...}
    report: {heatmap: {x: offset, y: dose, value: final_burden}}

Every error is one line naming the key, the value and what is allowed
(solver.config.messages.one_line_error), raised as ConfigError.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    ValidationError,
    model_validator,
)

from solver.config import builtin_config_path, read_config_file
from solver.config.messages import one_line_error
from solver.config.types import Count, Number, Seed, not_bool
from solver.errors import ConfigError
from solver.text import first_line, shown
from solver.yaml_loader import load_yaml

OUTCOME_KINDS = ("final", "min", "max", "time_of_min", "time_of_max", "auc", "regrowth", "nadir",
                 "fold_change", "time_below", "cure", "dose", "expression")
SAMPLING_DESIGNS = ("random", "latin-hypercube", "sobol")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONFIG_KEY_RE = re.compile(r"[.\[]")
Scalar = int | float | str | bool


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def is_config_key(name: str) -> bool:
    """A `vary`/`derive` name with a '.' or '[' is a config key; a plain name is a study variable."""
    return bool(_CONFIG_KEY_RE.search(name))


class Distribution(_Section):
    """A distribution sampled by a sampling design (its inverse CDF at the design's points).

    uniform and loguniform on [low, high]; integers: low..high inclusive; normal with mean
    and sd; lognormal with median and sigma (of the log).
    """

    kind: Literal["uniform", "loguniform", "integers", "normal", "lognormal"]
    low: Number | None = None
    high: Number | None = None
    mean: Number | None = None
    sd: Number | None = Field(None, gt=0)
    median: Number | None = Field(None, gt=0)
    sigma: Number | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _parameters(self) -> Distribution:
        needs = {"uniform": ("low", "high"), "loguniform": ("low", "high"), "integers": ("low", "high"),
                 "normal": ("mean", "sd"), "lognormal": ("median", "sigma")}[self.kind]
        given = {k for k in ("low", "high", "mean", "sd", "median", "sigma") if getattr(self, k) is not None}
        if given != set(needs):
            raise ValueError(f"a {self.kind} distribution takes {' and '.join(needs)}, got {', '.join(sorted(given)) or 'none'}")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"needs low < high, got low {self.low:g}, high {self.high:g}")
        if self.kind == "loguniform" and self.low <= 0:
            raise ValueError(f"a loguniform distribution needs low > 0, got {self.low:g}")
        if self.kind == "integers" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError(f"integers needs whole numbers low and high, got {self.low:g}, {self.high:g}")
        return self


class VaryEntry(_Section):
    """How one varied name gets its values: exactly one of values, range, linspace,
    logspace or distribution. `key` is the config key it sets (a name that is itself a
    config key sets that key; a plain name without `key` is a study variable for `derive`)."""

    key: str | None = None
    values: list[Scalar] | None = Field(None, min_length=1)
    range: tuple[Number, Number, Number] | None = None  # start, stop (included when on the grid), step
    linspace: tuple[Number, Number, Annotated[int, BeforeValidator(not_bool), Field(ge=1)]] | None = None
    logspace: tuple[Number, Number, Annotated[int, BeforeValidator(not_bool), Field(ge=1)]] | None = None
    distribution: Distribution | None = None

    @model_validator(mode="after")
    def _one_source(self) -> VaryEntry:
        given = [k for k in ("values", "range", "linspace", "logspace", "distribution") if getattr(self, k) is not None]
        if len(given) != 1:
            got = ", ".join(given) if given else "none"
            raise ValueError(f"give exactly one of values, range, linspace, logspace, distribution; got {got}")
        if self.values is not None:
            kinds = {"text" if isinstance(v, str) else "true/false" if isinstance(v, bool) else "number" for v in self.values}
            if len(kinds) > 1:
                raise ValueError(f"values must all be of one kind (numbers, text or true/false), got {shown(self.values)}")
            if any(isinstance(v, float) and not math.isfinite(v) for v in self.values):
                raise ValueError(f"values must be finite, got {shown(self.values)}")
        if self.range is not None:
            start, stop, step = self.range
            if step == 0 or (stop - start) / step < 0:
                raise ValueError(f"range [start, stop, step] needs a step that goes from start to stop, got {list(self.range)}")
            if (stop - start) / step > 100000:
                raise ValueError(f"range {list(self.range)} makes more than 100000 values")
        if self.logspace is not None and not (self.logspace[0] > 0 and self.logspace[1] > 0):
            raise ValueError(f"logspace [start, stop, num] needs start and stop > 0, got {list(self.logspace)}")
        return self

    def grid_values(self) -> list[Any] | None:
        """The entry's finite list of values (None for a distribution)."""
        import numpy as np

        if self.values is not None:
            return list(self.values)
        if self.range is not None:
            start, stop, step = self.range
            n = math.floor((stop - start) / step + 1e-9) + 1
            return [_tidy(start + k * step) for k in range(n)]
        if self.linspace is not None:
            return [_tidy(float(v)) for v in np.linspace(*self.linspace)]
        if self.logspace is not None:
            return [_tidy(float(v)) for v in np.geomspace(*self.logspace)]
        return None


def _tidy(value: float) -> float:
    """A computed grid value without the last-digit noise of k * step (0.30000000000000004 -> 0.3)."""
    return float(f"{value:.12g}")


class Replicates(_Section):
    """Members repeated with other random seeds: replicate r sets each seed key to its base
    value + r (replicate 0 is the base). Keys default to every generated map's seed."""

    count: Count = 1
    keys: list[str] | None = None


class OutcomeSpec(_Section):
    """One outcome of a member, from its time series: exactly one reduction (OUTCOME_KINDS).

    The reduction's argument is a series name or a whitelisted expression of series names
    (elementwise), except `dose` (an agent) and `expression` (of outcomes defined before).
    """

    final: str | None = None
    min: str | None = None
    max: str | None = None
    time_of_min: str | None = None
    time_of_max: str | None = None
    auc: str | None = None
    regrowth: str | None = None
    nadir: str | None = None
    fold_change: str | None = None
    time_below: str | None = None
    cure: str | None = None
    dose: str | None = None
    expression: str | None = None
    threshold: Number | None = None  # time_below: below this (a fraction of day 0 when relative)
    relative: StrictBool = False
    below: Number | None = None  # cure: extinct below this
    better: Literal["lower", "higher"] | None = None
    units: str = ""

    @model_validator(mode="after")
    def _one_kind(self) -> OutcomeSpec:
        given = [k for k in OUTCOME_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(OUTCOME_KINDS)}; got {', '.join(given) or 'none'}")
        kind = given[0]
        if kind == "time_below" and self.threshold is None:
            raise ValueError("time_below needs a threshold (with relative: true, a fraction of the day-0 value)")
        if kind == "cure" and self.below is None:
            raise ValueError("cure needs `below`: the level under which the tumour is extinct (e.g. 1.0 cell)")
        if self.threshold is not None and kind != "time_below":
            raise ValueError("threshold applies to time_below only")
        if self.below is not None and kind != "cure":
            raise ValueError("below applies to cure only")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in OUTCOME_KINDS if getattr(self, k) is not None)

    @property
    def argument(self) -> str:
        return str(getattr(self, self.kind))


class LocalClusterSpec(_Section):
    """An embedded Dask cluster on this machine: one single-threaded worker per core (CPU),
    or one worker per visible GPU with its device pinned (members_per_gpu threads each)."""

    kind: Literal["local"] = "local"
    workers: Count | None = None
    members_per_gpu: Count = 1
    gpus: Literal["auto", "none"] = "auto"  # none: CPU workers even where GPUs are visible
    dashboard: str | None = None  # e.g. ":8787" (needs bokeh)


class SlurmClusterSpec(_Section):
    """Workers started as SLURM jobs through dask-jobqueue's SLURMCluster (docs/studies.md)."""

    kind: Literal["slurm"]
    queue: str | None = None
    account: str | None = None
    walltime: str = "01:00:00"
    cores: Count = 1  # per job
    memory: str = "4GB"  # per job
    processes: Count | None = None  # workers per job; default: gpus_per_job, else 1
    gpus_per_job: Annotated[int, BeforeValidator(not_bool), Field(ge=0)] = 0
    jobs: Count = 1  # jobs started (workers = jobs x processes); --workers sets workers instead
    job_extra_directives: list[str] = Field(default_factory=list)
    job_script_prologue: list[str] = Field(default_factory=list)
    worker_extra_args: list[str] = Field(default_factory=list)
    local_directory: str | None = None
    log_directory: str | None = None
    interface: str | None = None
    python: str | None = None
    job_name: str = "tumorsim"


def _cluster_kind(value: Any) -> str:
    kind = value.get("kind", "local") if isinstance(value, dict) else getattr(value, "kind", "local")
    return f"<{kind}>"


# Union members tagged '<...>' as in solver/config/sources.py, so errors name `cluster.KEY`.
ClusterSpec = Annotated[
    Annotated[LocalClusterSpec, Tag("<local>")] | Annotated[SlurmClusterSpec, Tag("<slurm>")],
    Discriminator(_cluster_kind),
]


class HeatmapSpec(_Section):
    x: str
    y: str
    value: str | None = None  # an outcome; default: the efficacy outcome


class ReportSpec(_Section):
    """What `tumorsim study report` draws (each key can also be given on its command line)."""

    heatmap: HeatmapSpec | None = None
    efficacy: str | None = None  # default: final_burden when there, else the first outcome with `better`
    toxicity: str | None = None  # default: lymphocyte_nadir when there, else the second such outcome
    series: list[str] = Field(default_factory=lambda: ["tumour_burden", "C"])
    members: list[str] = Field(default_factory=list)  # member ids to overlay besides the best and the base


class ResponseSpec(_Section):
    """How a cohort's response is counted: a patient responds at reduction r when the final
    value of `series` is at most (1 - r) of its day-0 value (the `fold_change` outcome);
    cured by the outcome `cure` (1 = cured; default: `cured` when the study has it)."""

    series: str = "tumour_burden"
    reductions: list[Annotated[float, BeforeValidator(not_bool), Field(gt=0, le=1)]] = Field(
        default_factory=lambda: [0.3, 0.5, 0.9])
    cure: str | None = None


class CohortSpec(_Section):
    """Virtual patients: every regimen of the study runs once per patient.

    Patient i takes the variant around[i % len(around)] (`base`: the base config's own
    parameters) and, for each listed parameter p, the value median_p exp(sigma_p z) with
    z standard normal from numpy's default_rng(seed): log-normal around the variant's value.
    """

    size: Count
    seed: Seed = 0
    around: str | list[str] = "base"
    sigma: Annotated[float, BeforeValidator(not_bool), Field(gt=0, le=5)] = 0.25
    parameters: list[str] | dict[str, Annotated[float, BeforeValidator(not_bool), Field(gt=0, le=5)]] = Field(min_length=1)
    response: ResponseSpec = Field(default_factory=ResponseSpec)

    @model_validator(mode="after")
    def _names(self) -> CohortSpec:
        around = self.variants
        if not around or len(set(around)) != len(around):
            raise ValueError(f"around: give `base`, a variant or a list of distinct variants, got {shown(self.around)}")
        if "base" in around and len(around) > 1:
            raise ValueError("around: `base` (the base config's own parameters) cannot be mixed with variants")
        names = list(self.parameters)
        if len(set(names)) != len(names):
            raise ValueError(f"parameters: listed twice in {shown(names)}")
        return self

    @property
    def variants(self) -> list[str]:
        return [self.around] if isinstance(self.around, str) else list(self.around)

    def sigmas(self) -> dict[str, float]:
        """Parameter -> log-normal sigma, in the order listed."""
        if isinstance(self.parameters, dict):
            return dict(self.parameters)
        return {name: self.sigma for name in self.parameters}


class StudySpec(_Section):
    """A whole study file."""

    name: str | None = None
    description: str = ""
    base: str | dict[str, Any]
    set: dict[str, Any] = Field(default_factory=dict)
    vary: dict[str, VaryEntry] = Field(default_factory=dict)
    derive: dict[str, str | Number] = Field(default_factory=dict)
    combine: Literal["product", "zip", "random", "latin-hypercube", "sobol"] = "product"
    samples: Count | None = None
    seed: Seed = 0
    replicates: Annotated[Replicates, BeforeValidator(lambda v: {"count": v} if isinstance(v, int) and not isinstance(v, bool) else v)] = Field(default_factory=Replicates)
    include_base: StrictBool = True
    cohort: CohortSpec | None = None
    outcomes: dict[str, OutcomeSpec] = Field(default_factory=dict)
    default_outcomes: StrictBool = True
    cluster: ClusterSpec = Field(default_factory=LocalClusterSpec)
    report: ReportSpec = Field(default_factory=ReportSpec)
    output: str | None = None  # the study folder; default outputs/studies/<name>

    @model_validator(mode="after")
    def _consistent(self) -> StudySpec:
        if self.name is not None and not _NAME_RE.match(self.name):
            raise ValueError(f"name {self.name!r} is not allowed: it names the members' runs, so use 1 to 80 "
                             "letters, digits, '.', '_' or '-', starting with a letter or digit")
        for name, entry in self.vary.items():
            if not is_config_key(name) and not _IDENTIFIER_RE.match(name):
                raise ValueError(f"vary.{name}: a name is a study variable (letters, digits, _) or a config key "
                                 "(with '.' or '[', e.g. treatment[il2].start)")
            if is_config_key(name) and entry.key is not None:
                raise ValueError(f"vary.{name}: a config key names itself; `key` is for a study variable")
        sampling = self.combine in SAMPLING_DESIGNS
        if sampling and self.samples is None:
            raise ValueError(f"combine: {self.combine} needs `samples` (how many members to draw)")
        if not sampling and self.samples is not None:
            raise ValueError(f"samples applies to combine: {', '.join(SAMPLING_DESIGNS)}; this study combines by {self.combine}")
        if self.combine == "sobol" and self.samples & (self.samples - 1):
            low = 1 << (self.samples.bit_length() - 1)
            raise ValueError(f"sobol needs a power of 2 samples to keep its balance, got {self.samples} (use {low} or {2 * low})")
        if not sampling:
            for name, entry in self.vary.items():
                if entry.distribution is not None:
                    raise ValueError(f"vary.{name}: a distribution needs a sampling design (combine: "
                                     f"{', '.join(SAMPLING_DESIGNS)}); with {self.combine} give values")
        if self.combine == "zip":
            lengths = {name: len(entry.grid_values()) for name, entry in self.vary.items()}
            if len(set(lengths.values())) > 1:
                shown_lengths = ", ".join(f"{k} {v}" for k, v in lengths.items())
                raise ValueError(f"combine: zip needs every vary entry to have as many values; got {shown_lengths}")
        for key in self.derive:
            if not is_config_key(key):
                raise ValueError(f"derive.{key}: a derived value sets a config key (with '.' or '['), e.g. treatment[il2].start")
        if self.cohort is not None:
            varied = {self.vary[k].key or k for k in self.vary} | set(self.derive)
            for name in self.cohort.parameters:
                if f"model.parameters.{name}" in varied:
                    raise ValueError(f"cohort.parameters: {name!r} is also varied; a cohort samples it per patient")
            if "model.variant" in varied and self.cohort.variants != ["base"]:
                raise ValueError("cohort.around gives the patients' variants; model.variant cannot be varied too")
        return self


@dataclass(frozen=True)
class Study:
    """A loaded study: the validated spec, the base config as written, and where it came from.

    Attributes:
        spec: The validated study file.
        name: spec.name, else the study file's stem, else "study".
        base: The base config's mapping as written (nothing expanded or validated).
        base_dir: Folder that the base config's relative paths resolve against.
        source: The study file (or "<study>" for a mapping), for messages.
        base_source: The base config's file (or "<study>.base" when inline), for messages.
        text: The study file as written (None for a mapping): saved in the study folder.
    """

    spec: StudySpec
    name: str
    base: dict[str, Any]
    base_dir: Path
    source: str
    base_source: str
    text: str | None = field(default=None, repr=False)


def load_study(source: str | Path | dict[str, Any], base_dir: str | Path | None = None) -> Study:
    """Read and validate a study file (or an inline study mapping) and its base config's mapping.

    Args:
        source: a YAML study file, or the study as a mapping.
        base_dir: for a mapping, the folder a relative `base` path resolves against
            (default: the working folder).

    Raises:
        ConfigError: unreadable file, YAML syntax, an invalid key or value, or a base
            config that cannot be read; one line naming what is wrong and what is allowed.
    """
    spec, where, folder, text = read_spec(source, StudySpec, base_dir, "study")
    return study_of(spec, where, folder, text)


def study_of(spec: StudySpec, where: str, folder: Path, text: str | None = None) -> Study:
    """The Study of a validated spec read from `where` (its base config read)."""
    base, base_dir_out, base_source = load_base(spec.base, folder, where)
    stem = Path(where).stem if where != "<study>" else "study"
    name = spec.name or (stem if _NAME_RE.match(stem) else "study")
    return Study(spec, name, base, base_dir_out, where, base_source, text)


def read_spec(source: str | Path | dict[str, Any], schema: type[BaseModel], base_dir: str | Path | None = None,
              what: str = "study") -> tuple[Any, str, Path, str | None]:
    """A YAML file (or a mapping) validated against `schema`: (spec, where, folder, text).

    `where` names it in messages ("<study>" for a mapping), `folder` is where its relative
    paths resolve, `text` the file as written (None for a mapping).

    Raises:
        ConfigError: unreadable file, YAML syntax, an invalid key or value (one line).
    """
    text = None
    if isinstance(source, dict):
        data, where, folder = source, "<study>", Path(base_dir or ".").resolve()
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"{what} file {str(path)!r} {'is a folder' if path.is_dir() else 'not found'}; expected a YAML file")
        try:
            text = path.read_text(encoding="utf-8")
            data = load_yaml(text)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {what} file {str(path)!r}: {first_line(str(exc))}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"{path}: YAML syntax error{at}: {first_line(getattr(exc, 'problem', None) or exc)}") from None
        where, folder = str(path), path.resolve().parent
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a {what} must be a mapping of keys ({', '.join(schema.model_fields)}), "
                          f"got {'an empty file' if data is None else shown(data)}")
    try:
        spec = schema.model_validate(data)
    except ValidationError as exc:
        # the checks across keys (model_validator) name their keys themselves
        raise ConfigError(f"{where}: {one_line_error(exc, schema).removeprefix('(top level): ')}") from None
    return spec, where, folder, text


def load_base(base: str | dict[str, Any], folder: Path, where: str) -> tuple[dict[str, Any], Path, str]:
    """The base config's mapping, the folder its paths resolve against, and its name."""
    if isinstance(base, dict):
        return base, folder, f"{where} (base)"
    if base.endswith((".yaml", ".yml")) or "/" in base:
        path = Path(base).expanduser()
        path = path if path.is_absolute() else folder / path
    else:
        try:
            path = builtin_config_path(base)
        except ConfigError as exc:
            raise ConfigError(f"{where}: base: {exc} (or give a config file ending in .yaml)") from None
    try:
        data = read_config_file(path)
    except ConfigError as exc:
        raise ConfigError(f"{where}: base: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: base: {path} is not a config mapping")
    return data, path.resolve().parent, str(path.resolve())
