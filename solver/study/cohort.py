"""Virtual patient cohorts: patients sampled around published parameter sets, their
response rates and outcome distributions per regimen.

Public API:
    Patient                                  one virtual patient: index, variant, parameter values
    cohort_medians(study, base_config) -> dict[variant, dict[parameter, value]]
    sample_cohort(spec, medians) -> list[Patient]
    patient_overrides(patient) -> list[(key, value)]     the config changes that make the patient
    patient_columns(spec) -> list[str]                   the summary columns of a patient
    aggregate(values, statistic, q=None) -> float        mean, median, min, max or a quantile
    response_table(frame, meta) -> pandas.DataFrame      one row per regimen
    response_markdown(table, meta) -> str, cohort_figure(frame, meta, outcomes) -> Figure

A cohort (`cohort:` of a study or an optimisation, solver/study/spec.py CohortSpec) of
`size` patients: patient i takes the variant around[i % len(around)] (alternating, so
both published patients are equally represented) and, for each listed parameter p,

    p_i = median_p(variant) * exp(sigma_p * z_ip),   z_ip ~ N(0, 1) from default_rng(seed)

(log-normal around the variant's value; `around: base` uses the base config's own
values). The draws are one (size x parameters) matrix in the order the parameters are
listed: the same seed gives the same patients. Every regimen of the study runs once per
patient (the same patients for every regimen).

Response (ResponseSpec): a patient responds at reduction r when the `fold_change`
outcome (final / day-0 value of the response series, the tumour burden by default) is
at most 1 - r; cured when the cure outcome (`cured` of the built-in models: below one
cell at any record) is 1. Rates are given with Wilson's 95 % score interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from solver.errors import ConfigError
from solver.study.outcomes import FOLD_CHANGE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from solver.config import RunConfig
    from solver.study.spec import CohortSpec, Study

STATISTICS = ("mean", "median", "min", "max", "quantile")
PATIENT = "patient"
VARIANT = "variant"
REGIMEN = "regimen"


@dataclass(frozen=True)
class Patient:
    """One virtual patient.

    Attributes:
        index: 0..size-1.
        variant: The built-in variant the patient is drawn around (None: the base config's values).
        values: Parameter name -> sampled value, in the order the cohort lists them.
    """

    index: int
    variant: str | None
    values: dict[str, float] = field(default_factory=dict)


def cohort_medians(study: Study, base_config: RunConfig) -> dict[str, dict[str, float]]:
    """The value of each cohort parameter in each variant it is drawn around: the base
    config (with the study's `set`) resolved with `model.variant` set to that variant.

    Raises:
        ConfigError: a parameter the model lacks, a variant it lacks, `around` a variant of
            a model that is not built in, or a value that is not > 0 (log-normal).
    """
    from solver.config import parse_config

    spec = study.spec.cohort
    assert spec is not None
    names = list(spec.parameters)
    params = base_config.model.parameters
    missing = [n for n in names if n not in params]
    if missing:
        raise ConfigError(f"{study.source}: cohort.parameters: {missing[0]!r} is not a parameter of the model; "
                          f"parameters: {', '.join(params)}")
    medians: dict[str, dict[str, float]] = {}
    for variant in spec.variants:
        if variant == "base":
            medians[variant] = {n: float(params[n]) for n in names}
            continue
        if base_config.model.builtin is None:
            raise ConfigError(f"{study.source}: cohort.around: {variant!r}: the base model is not a built-in model "
                              "with variants; use around: base (log-normal around the base config's values)")
        overrides = [*study.spec.set.items(), ("model.variant", variant)]
        try:
            config = parse_config(study.base, study.base_source, overrides)
        except ConfigError as exc:
            raise ConfigError(f"{study.source}: cohort.around: {exc}") from None
        medians[variant] = {n: float(config.model.parameters[n]) for n in names}
    for variant, values in medians.items():
        for name, value in values.items():
            if not value > 0:
                raise ConfigError(f"{study.source}: cohort.parameters: {name!r} is {value:g} in {variant}; a "
                                  "log-normal cohort needs values > 0")
    return medians


def sample_cohort(spec: CohortSpec, medians: dict[str, dict[str, float]]) -> list[Patient]:
    """The cohort's patients, reproducible from spec.seed (see the module docstring)."""
    sigmas = spec.sigmas()
    z = np.random.default_rng(spec.seed).standard_normal((spec.size, len(sigmas)))
    variants = spec.variants
    patients = []
    for i in range(spec.size):
        variant = variants[i % len(variants)]
        values = {name: float(medians[variant][name] * math.exp(sigma * z[i, j]))
                  for j, (name, sigma) in enumerate(sigmas.items())}
        patients.append(Patient(i, None if variant == "base" else variant, values))
    return patients


def patient_overrides(patient: Patient) -> list[tuple[str, Any]]:
    """`--set` pairs that make a config the patient: the variant first, then each parameter."""
    out: list[tuple[str, Any]] = [("model.variant", patient.variant)] if patient.variant is not None else []
    out += [(f"model.parameters.{name}", value) for name, value in patient.values.items()]
    return out


def patient_columns(spec: CohortSpec) -> list[str]:
    """The summary columns a patient adds: patient, variant (when drawn around variants), parameters."""
    columns = [PATIENT] + ([VARIANT] if spec.variants != ["base"] else [])
    return columns + [f"model.parameters.{name}" for name in spec.parameters]


def patient_values(patient: Patient, spec: CohortSpec) -> dict[str, Any]:
    """The patient's summary columns (patient_columns) and their values."""
    out: dict[str, Any] = {PATIENT: patient.index}
    if spec.variants != ["base"]:
        out[VARIANT] = patient.variant
    out.update({f"model.parameters.{name}": value for name, value in patient.values.items()})
    return out


def aggregate(values: Sequence[float], statistic: str, q: float | None = None) -> float:
    """One number from a cohort's values: mean, median, min, max or the q-quantile
    (linear interpolation, numpy's default). NaN when any value is NaN."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0 or np.isnan(x).any():
        return math.nan
    if statistic == "mean":
        return float(np.mean(x))
    if statistic == "median":
        return float(np.median(x))
    if statistic == "min":
        return float(np.min(x))
    if statistic == "max":
        return float(np.max(x))
    if statistic == "quantile" and q is not None:
        return float(np.quantile(x, q))
    raise ConfigError(f"statistic {statistic!r}: allowed {', '.join(STATISTICS)} (quantile with q in (0, 1))")


def wilson_interval(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson's score interval for k successes of n (95 % by default)."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if k == 0 else max(0.0, centre - half)  # exact at the ends (the formula gives them
    high = 1.0 if k == n else min(1.0, centre + half)  # up to rounding)
    return low, high


def regimen_labels(frame: Any, meta: dict[str, Any]) -> dict[int, str]:
    """Regimen number -> its varied values as text (the columns that are not the patient's)."""
    skip = set(meta.get("cohort_columns") or []) | {REGIMEN, "replicate"}
    columns = [c for c in meta.get("columns") or [] if c not in skip]
    named = [c for c in columns if frame[c].map(lambda v: isinstance(v, str)).all()]
    columns = named or columns  # a text variable (e.g. `arm: {values: [MTD, metronomic]}`) names the regimens
    labels = {}
    for regimen, rows in frame.groupby(REGIMEN, sort=True):
        first = rows.iloc[0]
        shown = [_short(first[c]) for c in columns] if named else [f"{c}={_short(first[c])}" for c in columns]
        labels[int(regimen)] = ", ".join(shown) or f"regimen {int(regimen)}"
    return labels


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def response_table(frame: Any, meta: dict[str, Any]) -> Any:
    """One row per regimen: patients done, cure rate and response rates at each reduction
    (with Wilson 95 % intervals), and the median and interquartile range of the main outcomes."""
    import pandas as pd

    cohort = meta["cohort"]
    reductions = cohort["response"]["reductions"]
    cure = cohort.get("cure_outcome")
    done = frame[frame["status"] == "done"]
    labels = regimen_labels(frame, meta)
    rows = []
    for regimen, label in labels.items():
        part = done[done[REGIMEN] == regimen]
        n = len(part)
        row: dict[str, Any] = {REGIMEN: regimen, "label": label, "patients": n,
                               "of": int((frame[REGIMEN] == regimen).sum())}
        if cure is not None:
            k = int((part[cure] >= 0.5).sum())
            row["cure_rate"], (row["cure_low"], row["cure_high"]) = (k / n if n else math.nan), wilson_interval(k, n)
        fold = part[FOLD_CHANGE].to_numpy(dtype=float) if FOLD_CHANGE in part else np.full(n, np.nan)
        for r in reductions:
            k = int(np.sum(fold <= 1.0 - r))
            tag = f"response_{round(100 * r)}"
            row[f"{tag}_rate"], (row[f"{tag}_low"], row[f"{tag}_high"]) = (k / n if n else math.nan), wilson_interval(k, n)
        for outcome in cohort_outcomes(meta):
            values = part[outcome].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            quart = np.quantile(values, [0.25, 0.5, 0.75]) if values.size else [math.nan] * 3
            row[f"{outcome}_q25"], row[f"{outcome}_median"], row[f"{outcome}_q75"] = (float(v) for v in quart)
        rows.append(row)
    return pd.DataFrame(rows)


def cohort_outcomes(meta: dict[str, Any]) -> list[str]:
    """The outcomes a cohort report shows: the fold change, then the report's efficacy and toxicity."""
    outcomes = meta.get("outcomes") or {}
    report = meta.get("report") or {}
    chosen = [FOLD_CHANGE, report.get("efficacy") or "final_burden", report.get("toxicity") or "lymphocyte_nadir"]
    return [o for o in dict.fromkeys(chosen) if o in outcomes]


def response_markdown(table: Any, meta: dict[str, Any]) -> str:
    """The response table as Markdown: rates as percentages with their intervals."""
    cohort = meta["cohort"]
    reductions = cohort["response"]["reductions"]
    cure = cohort.get("cure_outcome")
    outcomes = cohort_outcomes(meta)
    head = ["regimen", "patients"] + (["cured"] if cure else [])
    head += [f"reduction >= {round(100 * r)} %" for r in reductions]
    head += [f"{o} median [IQR]" for o in outcomes]
    lines = [f"# Cohort of {cohort['size']} patients (seed {cohort['seed']}, around {', '.join(cohort['variants'])})",
             "", (f"Response: final {cohort['response']['series']} at most (1 - r) of its day-0 value "
                  "(the fold_change outcome); rates with Wilson 95 % intervals."), "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for _, row in table.iterrows():
        cells = [str(row["label"]), f"{row['patients']} of {row['of']}"]
        if cure:
            cells.append(_rate(row, "cure"))
        cells += [_rate(row, f"response_{round(100 * r)}") for r in reductions]
        cells += [f"{row[f'{o}_median']:.3g} [{row[f'{o}_q25']:.3g}, {row[f'{o}_q75']:.3g}]" for o in outcomes]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _rate(row: Any, tag: str) -> str:
    value = row[f"{tag}_rate"]
    if not math.isfinite(value):
        return ""
    return f"{100 * value:.0f} % [{100 * row[f'{tag}_low']:.0f}, {100 * row[f'{tag}_high']:.0f}]"


def cohort_figure(frame: Any, meta: dict[str, Any]) -> Figure:
    """One panel per cohort outcome: each regimen's patients as points over a box plot."""
    from matplotlib.figure import Figure

    done = frame[frame["status"] == "done"]
    outcomes = cohort_outcomes(meta)
    labels = regimen_labels(frame, meta)
    fig = Figure(figsize=(3.6 * len(outcomes) + 0.6, 4.4), layout="constrained")
    axes = fig.subplots(1, len(outcomes), squeeze=False)[0]
    rng = np.random.default_rng(0)  # horizontal jitter of the points only
    units = {n: o.get("units", "") for n, o in (meta.get("outcomes") or {}).items()}
    for ax, outcome in zip(axes, outcomes):
        data = [done[done[REGIMEN] == r][outcome].to_numpy(dtype=float) for r in labels]
        data = [d[np.isfinite(d)] for d in data]
        ax.boxplot(data, positions=range(len(data)), widths=0.5, showfliers=False)
        for k, d in enumerate(data):
            ax.scatter(k + rng.uniform(-0.12, 0.12, d.size), d, s=14, alpha=0.7, zorder=3)
        values = np.concatenate(data) if data else np.array([])
        if values.size and values.min() > 0 and values.max() / values.min() > 30:
            ax.set_yscale("log")
        if outcome == FOLD_CHANGE:
            for r in meta["cohort"]["response"]["reductions"]:
                ax.axhline(1.0 - r, color="0.6", lw=0.8, ls="--")
        ax.set_xticks(range(len(labels)), [_wrap(t) for t in labels.values()], fontsize=7)
        ax.set_ylabel(f"{outcome} [{units[outcome]}]" if units.get(outcome) else outcome)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{meta['cohort']['size']} virtual patients per regimen")
    return fig


def _wrap(text: str, width: int = 28) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text
