"""The optimisation file of `tumorsim optimise`: its schema and loading.

Public API:
    load_optimisation(source, base_dir=None) -> Optimisation    a file (path) or a mapping
    Optimisation             the validated spec and the Study of its base config (shared parts)
    OptimiseSpec and its sections: Variable, Objective, Constraint, SamplerSpec
    SAMPLERS                 nsga2, tpe, random

An optimisation file (docs/optimisation.md documents every key):

    name: chemo-il2-pd1
    base: ../quickstart.yaml                  # as a study's base; `set` as a study's
    set: {time.end: 14.0}
    variables:                                # what the search may change
      treatment[chemo].dose_rate: {low: 0.5, high: 4.0}               # a config key, a float
      il2_start: {key: "treatment[il2].start", low: 0.0, high: 6.0, step: 0.5}
      treatment[il2].count: {low: 1, high: 5, integer: true}
      order: {cases: {chemo-first: {treatment[chemo].start: 0.0, treatment[pd1].start: "gap"},
                      pd1-first: {treatment[pd1].start: 0.0, treatment[chemo].start: "gap"}}}
      gap: {low: 0.0, high: 4.0}                # a plain name: a variable for expressions only
    derive: {treatment[til].start: "il2_start"}            # whitelisted expressions
    objectives: [final_burden, {outcome: chemo_dose, direction: minimise}]
    constraints: [{outcome: lymphocyte_nadir, min: 0.25}, {outcome: chemo_dose, max: 6.0}]
    sampler: {kind: nsga2, seed: 1, population: 8}
    trials: 32
    references: {chemo-only: {treatment[il2].count: 1}}   # arms run once, drawn on the front
    cohort: {size: 8, around: [patient9, patient10], parameters: [a, d]}   # optional

Every error is one line naming the key, the value and what is allowed (ConfigError).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StrictBool, model_validator

from solver.config.types import Count, Number, Seed, not_bool
from solver.errors import ConfigError
from solver.study.spec import (
    _IDENTIFIER_RE,
    _NAME_RE,
    ClusterSpec,
    CohortSpec,
    LocalClusterSpec,
    OutcomeSpec,
    Scalar,
    Study,
    StudySpec,
    _Section,
    is_config_key,
    read_spec,
    study_of,
)
from solver.text import shown

SAMPLERS = ("nsga2", "tpe", "random")
_CASE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
Fraction = Annotated[float, BeforeValidator(not_bool), Field(gt=0, lt=1)]


class Variable(_Section):
    """A decision variable: a range (`low`, `high`; `integer`, `log`, `step`), a list of
    `choices`, or named `cases`, each a set of config keys with values or expressions of
    the numeric variables (e.g. the order of two agents). `key` is the config key a plain
    name sets (a name with '.' or '[' is itself the key)."""

    key: str | None = None
    low: Number | None = None
    high: Number | None = None
    integer: StrictBool = False
    log: StrictBool = False
    step: Annotated[float, BeforeValidator(not_bool), Field(gt=0)] | None = None
    choices: list[Scalar] | None = Field(None, min_length=1)
    cases: dict[str, dict[str, str | Number]] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> Variable:
        ranged = self.low is not None or self.high is not None
        given = [k for k, on in (("low/high", ranged), ("choices", self.choices is not None),
                                 ("cases", self.cases is not None)) if on]
        if len(given) != 1:
            raise ValueError(f"give exactly one of low and high, choices, cases; got {', '.join(given) or 'none'}")
        if ranged:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"a range needs low < high, got low {shown(self.low)}, high {shown(self.high)}")
            if self.log and self.low <= 0:
                raise ValueError(f"log: true needs low > 0, got {self.low:g}")
            if self.log and self.step is not None:
                raise ValueError("step and log: true cannot be combined (optuna samples a log range continuously)")
            if self.integer and not (float(self.low).is_integer() and float(self.high).is_integer()):
                raise ValueError(f"integer: true needs whole numbers low and high, got {self.low:g}, {self.high:g}")
            if self.integer and self.step is not None and not float(self.step).is_integer():
                raise ValueError(f"integer: true needs a whole step, got {self.step:g}")
        elif self.integer or self.log or self.step is not None:
            raise ValueError("integer, log and step apply to a range (low, high)")
        if self.choices is not None:
            kinds = {"text" if isinstance(v, str) else "true/false" if isinstance(v, bool) else "number" for v in self.choices}
            if len(kinds) > 1:
                raise ValueError(f"choices must all be of one kind (numbers, text or true/false), got {shown(self.choices)}")
            if len(set(map(repr, self.choices))) != len(self.choices):
                raise ValueError(f"choices are listed twice in {shown(self.choices)}")
            if any(isinstance(v, float) and not math.isfinite(v) for v in self.choices):
                raise ValueError(f"choices must be finite, got {shown(self.choices)}")
        if self.cases is not None:
            if self.key is not None:
                raise ValueError("cases set their own config keys; `key` is for a range or choices")
            for label, keys in self.cases.items():
                if not _CASE_RE.match(label):
                    raise ValueError(f"cases: {label!r} is not a case name (letters, digits, '._+-')")
                for key in keys:
                    if not is_config_key(key):
                        raise ValueError(f"cases.{label}: {key!r} is not a config key (with '.' or '[', e.g. "
                                         "treatment[chemo].start)")
        return self

    @property
    def kind(self) -> str:
        """float, int, categorical or cases."""
        if self.cases is not None:
            return "cases"
        if self.choices is not None:
            return "categorical"
        return "int" if self.integer else "float"

    @property
    def numeric(self) -> bool:
        """Its value can stand in an expression (a range, or numeric choices)."""
        if self.kind in ("float", "int"):
            return True
        return self.kind == "categorical" and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                  for v in self.choices or ())


_DIRECTIONS = {"minimise": "minimize", "minimize": "minimize", "maximise": "maximize", "maximize": "maximize"}


class Objective(_Section):
    """An outcome to minimise or maximise (default: its `better` direction); over a cohort,
    its `statistic` over the patients (mean, median, min, max, or the `q`-quantile)."""

    outcome: str
    direction: Literal["minimise", "maximise", "minimize", "maximize"] | None = None
    statistic: Literal["mean", "median", "min", "max", "quantile"] = "mean"
    q: Fraction | None = None

    @model_validator(mode="after")
    def _quantile(self) -> Objective:
        _check_quantile(self.statistic, self.q)
        return self


class Constraint(_Section):
    """A bound on an outcome: `min` (the outcome must be at least it) and/or `max`. Over a
    cohort, its `statistic` over the patients; default the worst patient (min for a lower
    bound, max for an upper one): every patient must satisfy it."""

    outcome: str
    min: Number | None = None
    max: Number | None = None
    statistic: Literal["mean", "median", "min", "max", "quantile"] | None = None
    q: Fraction | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Constraint:
        if self.min is None and self.max is None:
            raise ValueError(f"a constraint on {self.outcome!r} needs min and/or max")
        if self.min is not None and self.max is not None and not self.min <= self.max:
            raise ValueError(f"needs min <= max, got min {self.min:g}, max {self.max:g}")
        if self.min is not None and self.max is not None and self.statistic is None:
            raise ValueError("a constraint with both min and max needs a statistic (over a cohort the worst "
                             "patient differs for each bound); give two constraints or a statistic")
        _check_quantile(self.statistic or "min", self.q)
        return self

    @property
    def resolved_statistic(self) -> str:
        return self.statistic or ("min" if self.min is not None else "max")


def _check_quantile(statistic: str, q: float | None) -> None:
    if statistic == "quantile" and q is None:
        raise ValueError("statistic: quantile needs q in (0, 1), e.g. q: 0.9")
    if statistic != "quantile" and q is not None:
        raise ValueError("q applies to statistic: quantile")


def _objective(value: Any) -> Any:
    return {"outcome": value} if isinstance(value, str) else value


class SamplerSpec(_Section):
    """The optuna sampler, seeded: NSGA-II (default with two or more objectives; batches of
    `population` trials, one generation each), TPE (default with one; the first
    `startup_trials` random) or random search."""

    kind: Literal["nsga2", "tpe", "random"] | None = None
    seed: Seed = 0
    population: Annotated[int, BeforeValidator(not_bool), Field(ge=2)] = 8
    startup_trials: Count = 8


class OptimiseReport(_Section):
    series: list[str] = Field(default_factory=lambda: ["tumour_burden", "C"])  # the best regimen's time series


class OptimiseSpec(_Section):
    """A whole optimisation file."""

    name: str | None = None
    description: str = ""
    base: str | dict[str, Any]
    set: dict[str, Any] = Field(default_factory=dict)
    variables: dict[str, Variable] = Field(min_length=1)
    derive: dict[str, str | Number] = Field(default_factory=dict)
    objectives: list[Annotated[Objective, BeforeValidator(_objective)]] = Field(min_length=1)
    constraints: list[Constraint] = Field(default_factory=list)
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    trials: Count
    batch: Count | None = None  # trials asked and run together; default: population (nsga2), 4
    cohort: CohortSpec | None = None
    references: dict[str, dict[str, Any]] = Field(default_factory=dict)
    outcomes: dict[str, OutcomeSpec] = Field(default_factory=dict)
    default_outcomes: StrictBool = True
    cluster: ClusterSpec = Field(default_factory=LocalClusterSpec)
    report: OptimiseReport = Field(default_factory=OptimiseReport)
    output: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OptimiseSpec:
        if self.name is not None and not _NAME_RE.match(self.name):
            raise ValueError(f"name {self.name!r} is not allowed: it names the members' runs, so use 1 to 80 "
                             "letters, digits, '.', '_' or '-', starting with a letter or digit")
        for name, v in self.variables.items():
            if not is_config_key(name) and not _IDENTIFIER_RE.match(name):
                raise ValueError(f"variables.{name}: a name is a variable (letters, digits, _) or a config key "
                                 "(with '.' or '[', e.g. treatment[il2].start)")
            if is_config_key(name) and (v.key is not None or v.cases is not None):
                raise ValueError(f"variables.{name}: a config key names itself; `key` and `cases` are for a plain name")
            if v.kind == "categorical" and not v.numeric and not (is_config_key(name) or v.key):
                raise ValueError(f"variables.{name}: text choices must set a config key (give `key`)")
        for key in self.derive:
            if not is_config_key(key):
                raise ValueError(f"derive.{key}: a derived value sets a config key (with '.' or '['), e.g. treatment[il2].start")
        for name in self.references:
            if not _CASE_RE.match(name):
                raise ValueError(f"references: {name!r} is not a reference name (letters, digits, '._+-')")
        if self.batch is not None and self.sampler.kind == "nsga2" and self.batch != self.sampler.population:
            raise ValueError(f"batch ({self.batch}) must equal sampler.population ({self.sampler.population}) for "
                             "nsga2: each batch is one generation")
        seen = [(o.outcome, o.statistic, o.q) for o in self.objectives]
        if len(set(seen)) != len(seen):
            raise ValueError("objectives: an outcome (with its statistic) is listed twice")
        return self

    @property
    def sampler_kind(self) -> str:
        return self.sampler.kind or ("nsga2" if len(self.objectives) > 1 else "tpe")

    @property
    def batch_size(self) -> int:
        """Trials asked, run and told together: fixed by the file, not by the machine, so a
        seeded search gives the same trials on any cluster."""
        if self.batch is not None:
            return self.batch
        return self.sampler.population if self.sampler_kind == "nsga2" else 4

    def study_spec(self) -> StudySpec:
        """The parts a study shares: base, set, outcomes, cluster, output, cohort (no design)."""
        return StudySpec(name=self.name, description=self.description, base=self.base, set=self.set,
                         outcomes=self.outcomes, default_outcomes=self.default_outcomes, cluster=self.cluster,
                         output=self.output, cohort=self.cohort)


def direction_of(objective: Objective, outcomes: dict[str, OutcomeSpec], where: str) -> str:
    """optuna's "minimize" or "maximize" for an objective: its `direction`, else the outcome's `better`.

    Raises:
        ConfigError: the outcome has no `better` and the objective no direction.
    """
    if objective.direction is not None:
        return _DIRECTIONS[objective.direction]
    better = outcomes[objective.outcome].better
    if better is None:
        raise ConfigError(f"{where}: outcome {objective.outcome!r} has no `better` direction; give "
                          "direction: minimise or maximise")
    return "minimize" if better == "lower" else "maximize"


@dataclass(frozen=True)
class Optimisation:
    """A loaded optimisation: its spec and the Study of its shared parts (base config read)."""

    spec: OptimiseSpec
    study: Study

    @property
    def name(self) -> str:
        return self.study.name


def load_optimisation(source: str | Path | dict[str, Any], base_dir: str | Path | None = None) -> Optimisation:
    """Read and validate an optimisation file (or mapping) and its base config's mapping.

    Raises:
        ConfigError: unreadable file, YAML syntax, an invalid key or value (one line).
    """
    spec, where, folder, text = read_spec(source, OptimiseSpec, base_dir, "optimisation")
    return Optimisation(spec, study_of(spec.study_spec(), where, folder, text))
