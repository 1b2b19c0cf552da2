"""Global sensitivity analysis on the study engine: SALib's Sobol indices (Saltelli
sampling, bootstrap confidence intervals) or Morris screening, every sample point a study
member.

Public API:
    load_sensitivity(source, base_dir=None) -> Sensitivity      a file (path) or a mapping
    SensitivitySpec, ParameterRange                             its schema
    design(sens) -> Design          the sample (unit cube and parameter values), its members' study
    run_sensitivity(source, out=None, resume=False, scheduler=None, workers=None, progress=True,
                    stop=None) -> SensitivityResult
    analyse(design, summary) -> pandas.DataFrame                 the indices, one row per
                                    (outcome, parameter): S1, S1_conf, ST, ST_conf | mu_star, ...
    indices_figure(indices, method) -> Figure, indices_markdown(indices, sens) -> str
    dry_run_lines(design) -> list[str]

A sensitivity file (docs/optimisation.md documents every key):

    name: quickstart-sobol
    base: ../quickstart.yaml
    set: {grid.shape: [8, 8, 8], time.end: 10.0}
    parameters:                       # a model parameter by name, or any numeric config key
      a: {relative: 0.2}              # uniform on [0.8, 1.2] x the base value
      K_T: {low: 0.5, high: 1.3}
      treatment[chemo].dose_rate: {low: 1.0, high: 4.0, log: true}   # log-uniform
    method: sobol                     # or morris
    samples: 32                       # Sobol: N, a power of 2 -> N (D + 2) members
                                      #   (N (2D + 2) with second_order); Morris: trajectories
                                      #   -> samples (D + 1) members
    analyse: [final_burden, {lymphocyte_nadir: {log: false}}]
    seed: 0

The sample is drawn in the unit cube [0, 1)^D (SALib sobol.sample with scrambling, or
morris.sample with `levels` levels) and mapped to each parameter's range (uniform, or
uniform in log for `log: true`); Sobol indices do not change under such a map of each
input, Morris' elementary effects are then per unit of each parameter's range (mu* is
the mean absolute change of the outcome over a whole range, for a model linear in it).
Points that coincide (Morris trajectories sharing a grid point) are one member.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import BeforeValidator, Field, StrictBool, model_validator

from solver.config.types import Count, Number, Seed, not_bool
from solver.errors import ConfigError
from solver.study.spec import (
    _NAME_RE,
    ClusterSpec,
    LocalClusterSpec,
    OutcomeSpec,
    StudySpec,
    VaryEntry,
    _Section,
    is_config_key,
    read_spec,
    study_of,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)
METHODS = ("sobol", "morris")


class ParameterRange(_Section):
    """The range a parameter is sampled over: `low` and `high`, or `relative` r (the base
    value times [1 - r, 1 + r]); uniform, or log-uniform with `log: true`."""

    low: Number | None = None
    high: Number | None = None
    relative: Annotated[float, BeforeValidator(not_bool), Field(gt=0, lt=1)] | None = None
    log: StrictBool = False

    @model_validator(mode="after")
    def _range(self) -> ParameterRange:
        ranged = self.low is not None or self.high is not None
        if ranged == (self.relative is not None):
            raise ValueError("give low and high, or relative (a fraction of the base value, e.g. 0.2)")
        if ranged and (self.low is None or self.high is None or not self.low < self.high):
            raise ValueError(f"needs low < high, got low {self.low}, high {self.high}")
        if self.log and ranged and self.low <= 0:
            raise ValueError(f"log: true needs low > 0, got {self.low:g}")
        return self


class AnalyseOptions(_Section):
    log: StrictBool = False  # analyse log10 of the outcome (burdens that span decades)


def _analyse(value: Any) -> Any:
    if isinstance(value, list):
        out: dict[str, Any] = {}
        for item in value:
            out.update({item: {}} if isinstance(item, str) else item if isinstance(item, dict) else {str(item): {}})
        return out
    return value


class SensitivitySpec(_Section):
    """A whole sensitivity file."""

    name: str | None = None
    description: str = ""
    base: str | dict[str, Any]
    set: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, ParameterRange] = Field(min_length=2)
    method: Literal["sobol", "morris"] = "sobol"
    samples: Count
    second_order: StrictBool = False
    levels: Annotated[int, BeforeValidator(not_bool), Field(ge=2)] = 4
    seed: Seed = 0
    confidence: Annotated[float, BeforeValidator(not_bool), Field(gt=0, lt=1)] = 0.95
    resamples: Count = 100
    analyse: Annotated[dict[str, AnalyseOptions], BeforeValidator(_analyse)] = Field(min_length=1)
    outcomes: dict[str, OutcomeSpec] = Field(default_factory=dict)
    default_outcomes: StrictBool = True
    cluster: ClusterSpec = Field(default_factory=LocalClusterSpec)
    output: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SensitivitySpec:
        if self.name is not None and not _NAME_RE.match(self.name):
            raise ValueError(f"name {self.name!r} is not allowed: use 1 to 80 letters, digits, '.', '_' or '-'")
        if self.method == "sobol" and self.samples & (self.samples - 1):
            low = 1 << (self.samples.bit_length() - 1)
            raise ValueError(f"sobol needs a power of 2 samples (Saltelli's scheme keeps its balance), got "
                             f"{self.samples} (use {low} or {2 * low})")
        if self.method == "morris" and self.second_order:
            raise ValueError("second_order applies to method: sobol")
        keys = [config_key(n) for n in self.parameters]
        if len(set(keys)) != len(keys):
            raise ValueError("parameters: a key is listed twice (a name and its model.parameters key)")
        return self

    def study_spec(self, vary: dict[str, VaryEntry]) -> StudySpec:
        return StudySpec(name=self.name, description=self.description, base=self.base, set=self.set, vary=vary,
                         combine="zip", include_base=False, outcomes=self.outcomes,
                         default_outcomes=self.default_outcomes, cluster=self.cluster, output=self.output)


def config_key(name: str) -> str:
    """A parameter's config key: a plain name is a model parameter (model.parameters.NAME)."""
    return name if is_config_key(name) else f"model.parameters.{name}"


@dataclass(frozen=True)
class Sensitivity:
    spec: SensitivitySpec
    source: str
    folder: Path
    text: str | None


def load_sensitivity(source: str | Path | dict[str, Any], base_dir: str | Path | None = None) -> Sensitivity:
    """Read and validate a sensitivity file (or mapping).

    Raises:
        ConfigError: unreadable file, YAML syntax, an invalid key or value (one line).
    """
    spec, where, folder, text = read_spec(source, SensitivitySpec, base_dir, "sensitivity")
    return Sensitivity(spec, where, folder, text)


@dataclass
class Design:
    """A sensitivity analysis' sample and the study that runs it.

    Attributes:
        sens: The loaded file.
        problem: SALib's problem on the unit cube (names: the config keys).
        bounds: (low, high, log) per parameter, in parameter units.
        unit: (rows, D) sample in [0, 1)^D, as SALib drew it.
        values: (rows, D) the sample in parameter units.
        member_of_row: the study member (index into resolved.members) of each row.
        resolved: The study of the unique points (solver.study.members.ResolvedStudy).
    """

    sens: Sensitivity
    problem: dict[str, Any]
    bounds: list[tuple[float, float, bool]]
    unit: np.ndarray
    values: np.ndarray
    member_of_row: np.ndarray
    resolved: Any


def design(sens: Sensitivity) -> Design:
    """Draw the sample and resolve its members (nothing run, nothing written).

    Raises:
        ConfigError: a key the base config lacks, a relative range of a value that is not
            a number, an outcome to analyse that the study does not have.
    """
    from solver.config.overrides import get_value
    from solver.study.members import resolve_members

    spec = sens.spec
    keys = [config_key(n) for n in spec.parameters]
    probe = study_of(spec.study_spec({}), sens.source, sens.folder, sens.text)
    base = resolve_members(probe)
    base_resolved = base.base_config.model_dump(mode="json")
    bounds = []
    for name, key in zip(spec.parameters, keys):
        r = spec.parameters[name]
        if r.relative is None:
            bounds.append((float(r.low), float(r.high), r.log))
            continue
        try:
            value = get_value(base_resolved, key)
        except ConfigError as exc:
            raise ConfigError(f"{sens.source}: parameters.{name}: {exc}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{sens.source}: parameters.{name}: relative needs a base value > 0, got {value!r}")
        bounds.append((value * (1 - r.relative), value * (1 + r.relative), r.log))
    problem = {"num_vars": len(keys), "names": keys, "bounds": [[0.0, 1.0]] * len(keys)}
    unit = _sample(spec, problem)
    values = np.column_stack([_scale(unit[:, j], *bounds[j]) for j in range(len(keys))])
    unique: dict[tuple[float, ...], int] = {}
    member_of_row = np.array([unique.setdefault(tuple(row), len(unique)) for row in values.tolist()])
    points = np.array(list(unique), dtype=float)
    vary = {key: VaryEntry(values=[float(v) for v in points[:, j]]) for j, key in enumerate(keys)}
    study = study_of(spec.study_spec(vary), sens.source, sens.folder, sens.text)
    resolved = resolve_members(study)
    for outcome in spec.analyse:
        if outcome not in resolved.outcomes:
            raise ConfigError(f"{sens.source}: analyse: no outcome {outcome!r}; outcomes: {', '.join(resolved.outcomes)}")
    return Design(sens, problem, bounds, unit, values, member_of_row, resolved)


def _sample(spec: SensitivitySpec, problem: dict[str, Any]) -> np.ndarray:
    import warnings

    from SALib.sample import morris, sobol

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SALib's notes on sample sizes: the spec checks those itself
        if spec.method == "sobol":
            return sobol.sample(problem, spec.samples, calc_second_order=spec.second_order, scramble=True, seed=spec.seed)
        return morris.sample(problem, spec.samples, num_levels=spec.levels, seed=spec.seed)


def _scale(u: np.ndarray, low: float, high: float, log_scale: bool) -> np.ndarray:
    if log_scale:
        return np.exp(np.log(low) + u * (np.log(high) - np.log(low)))
    return low + u * (high - low)


@dataclass
class SensitivityResult:
    out: Path
    indices: Any  # pandas.DataFrame (analyse)
    summary: Any  # the study's summary (one row per member)
    files: list[Path]
    ran: int = 0
    wall_seconds: float = 0.0


def run_sensitivity(source: str | Path | dict[str, Any] | Design, out: str | Path | None = None, resume: bool = False,
                    scheduler: str | None = None, workers: int | None = None, progress: bool = True,
                    stop: Any = None) -> SensitivityResult:
    """Run the sample's members (a study: solver.study.engine.execute) and analyse them.

    Raises:
        ConfigError, SimulationError, RunInterrupted: as for a study.
    """
    from solver.study.engine import execute, study_folder

    d = source if isinstance(source, Design) else design(load_sensitivity(source))
    folder = study_folder(d.resolved, out)
    result = execute(d.resolved, folder, resume=resume, scheduler=scheduler, workers=workers, progress=progress,
                     stop=stop)
    files = _write_samples(d, result.summary, folder)
    indices = analyse(d, result.summary)
    files += write_indices(d, indices, folder)
    return SensitivityResult(folder, indices, result.summary, files, result.ran, result.wall_seconds)


def _write_samples(d: Design, summary: Any, out: Path) -> list[Path]:
    import pandas as pd

    frame = pd.DataFrame(d.values, columns=d.problem["names"])
    frame.insert(0, "member", [str(summary["id"].iloc[k]) for k in d.member_of_row])
    frame.insert(0, "row", range(len(frame)))
    frame.to_csv(out / "samples.csv", index=False)
    if d.sens.text is not None:
        (out / "sensitivity.yaml").write_text(d.sens.text, encoding="utf-8")
    return [out / "samples.csv"]


def analyse(d: Design, summary: Any) -> Any:
    """The indices of each analysed outcome from the members' outcomes (rows of the sample
    mapped to their members); an outcome with a member that did not finish, or NaN, is
    left out with a log line (SALib needs every row)."""
    import warnings

    import pandas as pd
    from SALib.analyze import morris, sobol

    spec = d.sens.spec
    rows = []
    for outcome, options in spec.analyse.items():
        y = summary[outcome].to_numpy(dtype=float)[d.member_of_row]
        if options.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                y = np.log10(y)
        if not np.isfinite(y).all():
            log.warning("sensitivity of %s left out: %d of %d sample rows have no finite value (failed members)",
                        outcome, int((~np.isfinite(y)).sum()), y.size)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if spec.method == "sobol":
                r = sobol.analyze(d.problem, y, calc_second_order=spec.second_order, num_resamples=spec.resamples,
                                  conf_level=spec.confidence, seed=spec.seed)
            else:
                r = morris.analyze(d.problem, d.unit, y, num_resamples=spec.resamples, conf_level=spec.confidence,
                                   num_levels=spec.levels, seed=spec.seed)
        label = f"log10 {outcome}" if options.log else outcome
        for j, key in enumerate(d.problem["names"]):
            row = {"outcome": label, "parameter": key}
            names = ("S1", "S1_conf", "ST", "ST_conf") if spec.method == "sobol" else ("mu", "mu_star", "mu_star_conf", "sigma")
            row.update({n: float(r[n][j]) for n in names})
            rows.append(row)
    columns = ["outcome", "parameter", *(("S1", "S1_conf", "ST", "ST_conf") if spec.method == "sobol"
                                         else ("mu", "mu_star", "mu_star_conf", "sigma"))]
    return pd.DataFrame(rows, columns=columns)


def write_indices(d: Design, indices: Any, out: Path) -> list[Path]:
    """indices.csv, indices.md and indices.png."""
    indices.to_csv(out / "indices.csv", index=False)
    (out / "indices.md").write_text(indices_markdown(indices, d), encoding="utf-8")
    files = [out / "indices.csv", out / "indices.md"]
    if len(indices):
        fig = indices_figure(indices, d.sens.spec.method, d.sens.spec.confidence)
        fig.savefig(out / "indices.png", dpi=130)
        files.append(out / "indices.png")
    return files


def indices_markdown(indices: Any, d: Design) -> str:
    spec = d.sens.spec
    rows = len(d.member_of_row)
    what = (f"Sobol indices (Saltelli sampling, N = {spec.samples}, {rows} sample rows, "
            f"{len(d.resolved.members)} members), {100 * spec.confidence:g} % bootstrap intervals "
            f"({spec.resamples} resamples)" if spec.method == "sobol" else
            f"Morris screening ({spec.samples} trajectories, {spec.levels} levels, {len(d.resolved.members)} members); "
            f"mu* per unit of each parameter's range, {100 * spec.confidence:g} % bootstrap interval")
    ranges = ", ".join(f"{k} {lo:.4g}..{hi:.4g}{' (log)' if lg else ''}" for k, (lo, hi, lg) in zip(d.problem["names"], d.bounds))
    lines = [f"# Sensitivity {d.resolved.study.name}", "", f"{what}. Ranges: {ranges}.", ""]
    if spec.method == "sobol":
        lines += ["| outcome | parameter | first order S1 | total order ST |", "|---|---|---|---|"]
        lines += [f"| {r.outcome} | {r.parameter} | {r.S1:.3f} ± {r.S1_conf:.3f} | {r.ST:.3f} ± {r.ST_conf:.3f} |"
                  for r in indices.itertuples()]
    else:
        lines += ["| outcome | parameter | mu* | mu | sigma |", "|---|---|---|---|---|"]
        lines += [f"| {r.outcome} | {r.parameter} | {r.mu_star:.4g} ± {r.mu_star_conf:.2g} | {r.mu:.4g} | {r.sigma:.4g} |"
                  for r in indices.itertuples()]
    return "\n".join(lines) + "\n"


def indices_figure(indices: Any, method: str, confidence: float = 0.95) -> Figure:
    """One panel per outcome: bars per parameter, first and total order (Sobol) or mu* and
    sigma (Morris), with the confidence intervals as error bars."""
    from matplotlib.figure import Figure

    outcomes = list(dict.fromkeys(indices["outcome"]))
    fig = Figure(figsize=(4.2 * len(outcomes) + 0.8, 4.2), layout="constrained")
    axes = fig.subplots(1, len(outcomes), squeeze=False)[0]
    for ax, outcome in zip(axes, outcomes):
        part = indices[indices["outcome"] == outcome]
        x = np.arange(len(part))
        labels = [p.removeprefix("model.parameters.") for p in part["parameter"]]
        if method == "sobol":
            ax.bar(x - 0.2, part["S1"], 0.4, yerr=part["S1_conf"], capsize=3, label="first order S1")
            ax.bar(x + 0.2, part["ST"], 0.4, yerr=part["ST_conf"], capsize=3, label="total order ST")
            ax.set_ylabel("Sobol index")
            ax.axhline(0.0, color="0.3", lw=0.8)
        else:
            ax.bar(x - 0.2, part["mu_star"], 0.4, yerr=part["mu_star_conf"], capsize=3, label="mu*")
            ax.bar(x + 0.2, part["sigma"], 0.4, label="sigma")
            ax.set_ylabel("elementary effect (per range)")
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(outcome)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    fig.suptitle(f"{'Sobol indices' if method == 'sobol' else 'Morris screening'} "
                 f"({100 * confidence:g} % intervals)")
    return fig


def dry_run_lines(d: Design) -> list[str]:
    spec = d.sens.spec
    lines = [(f"sensitivity {d.resolved.study.name!r} from {d.sens.source}: {spec.method}, {len(d.member_of_row)} "
              f"sample rows, {len(d.resolved.members)} member(s) (seed {spec.seed})")]
    for key, (low, high, log_scale) in zip(d.problem["names"], d.bounds):
        lines.append(f"  {key}: {low:.6g} .. {high:.6g}{' (log-uniform)' if log_scale else ''}")
    lines.append(f"  analyse: {', '.join(spec.analyse)}")
    return lines

