"""Outcomes of a study member, computed from its run's time series.

Public API:
    study_outcomes(spec, builtin, label) -> dict[str, OutcomeSpec]   the defaults of the built-in model
                                       (builtin_outcomes) updated by the study's, by name
    series_names(model) -> list[str]   the time series a run of `model` records
    check_outcomes(outcomes, model) -> None          refuse unknown series, agents or outcomes
    compute_outcomes(run, outcomes, config) -> dict[str, float]
    total_doses(config) -> dict[str, float]          amount given per agent up to time.end
    pareto_front(values, better) -> np.ndarray[bool] the members no other member beats

The reductions (x: the series, or a whitelisted expression of series names evaluated
record by record; t: the record times; x0: the day-0 value x[0]):
    final           x at the last record
    min, max        extremes over the records; time_of_min, time_of_max: when (first)
    auc             trapezoid integral of x over t
    regrowth        the first time after the minimum at which x is back at x0 (linear
                    between records); NaN when it is not by the end, 0 when x never fell
    nadir           min(x) / x0 (toxicity: 1 = no loss; NaN when x0 = 0)
    fold_change     x at the last record / x0 (a cohort's response: 0.5 is halved; NaN when x0 = 0)
    time_below      time with x below `threshold` (times x0 when `relative`), x linear
                    between records
    cure            1.0 when x falls below `below` at any record (extinction: a continuum
                    model regrows from a fraction of a cell, a tumour does not), else 0.0
    dose            the total amount of an agent given up to time.end (boluses, and
                    infusion rate x time; infusions running past the end count to the end)
    expression      a whitelisted expression of the outcomes defined before it
Series and agents are checked against the model before anything runs (check_outcomes).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from pydantic import ValidationError

from solver.builtin_models import builtin_outcomes
from solver.config import RunConfig
from solver.config.messages import one_line_error
from solver.errors import ConfigError
from solver.study.spec import OutcomeSpec, StudySpec

log = logging.getLogger(__name__)
FOLD_CHANGE = "fold_change"  # the outcome a cohort's response is counted from


def study_outcomes(spec: StudySpec, builtin: str | None, label: Callable[[str], str] = str) -> dict[str, OutcomeSpec]:
    """The outcomes of every member: the built-in model's defaults (unless
    `default_outcomes: false`, their units relabelled by `label` into the run's: "day" ->
    "h"), then the study's own, which replace a default of the same name; with a cohort,
    `fold_change` of its response series unless the study defines one."""
    out: dict[str, OutcomeSpec] = {}
    if spec.default_outcomes and builtin is not None:
        for name, raw in builtin_outcomes(builtin).items():
            try:
                out[name] = OutcomeSpec.model_validate({**raw, "units": label(raw.get("units", ""))})
            except ValidationError as exc:  # a shipped file that is wrong: a bug, said in one line
                raise ConfigError(f"built-in model {builtin}: outcomes.{name}: {one_line_error(exc, OutcomeSpec)}") from None
    out.update(spec.outcomes)
    cohort = getattr(spec, "cohort", None)
    if cohort is not None and FOLD_CHANGE not in out:
        out[FOLD_CHANGE] = OutcomeSpec(fold_change=cohort.response.series, better="lower", units="1")
    return out


def series_names(model: Any) -> list[str]:
    """The time series a run of `model` (solver.model.Model) records: per species total_/min_/max_,
    the systemic scalars, plasma_<agent> (rate_<agent> without PK), and the diagnostics
    (solver.run.Simulation.record writes them)."""
    names = [f"{k}_{s.name}" for s in model.species for k in ("total", "min", "max")]
    names += [v.name for v in model.systemic]
    names += [f"plasma_{a.name}" if a.pk is not None else f"rate_{a.name}" for a in model.agents]
    names += [d.name for d in model.diagnostics]
    return names


def check_outcomes(outcomes: Mapping[str, OutcomeSpec], model: Any) -> None:
    """Refuse an outcome whose series, agent or outcome names the model does not have.

    Raises:
        ConfigError: one line naming the outcome, the unknown name and the valid ones.
    """
    from solver.expressions import parse_expression

    series = series_names(model)
    agents = [a.name for a in model.agents]
    earlier: list[str] = []
    for name, spec in outcomes.items():
        where = f"outcomes.{name}.{spec.kind}"
        if spec.kind == "dose":
            if spec.argument not in agents:
                raise ConfigError(f"{where}: {spec.argument!r} is not an agent of the model; agents: {', '.join(agents) or 'none'}")
        elif spec.kind == "expression":
            parse_expression(spec.argument, earlier, where)
        elif spec.argument not in series:
            parse_expression(spec.argument, series, where)
        earlier.append(name)


def compute_outcomes(run: Any, outcomes: Mapping[str, OutcomeSpec], config: RunConfig) -> dict[str, float]:
    """Every outcome of one finished run (solver.io.run_file.RunData), in order.

    An outcome that cannot be computed from this run's numbers (a nadir of a series that
    starts at 0) is NaN, with a debug log line; unknown names were refused before running.
    """
    t = np.asarray(run.series_time, dtype=np.float64)
    doses = total_doses(config)
    out: dict[str, float] = {}
    for name, spec in outcomes.items():
        if spec.kind == "dose":
            out[name] = float(doses.get(spec.argument, 0.0))
        elif spec.kind == "expression":
            out[name] = _expression(spec.argument, out, f"outcomes.{name}")
        else:
            x = _series(run.series, spec.argument, f"outcomes.{name}")
            out[name] = _reduce(spec, t, x)
        if not math.isfinite(out[name]):
            log.debug("outcome %s of %s is %s", name, run.path, out[name])
    return out


def _series(series: Mapping[str, np.ndarray], text: str, where: str) -> np.ndarray:
    if text in series:
        return np.asarray(series[text], dtype=np.float64)
    return np.asarray(_evaluate(text, series, where), dtype=np.float64)


def _evaluate(text: str, values: Mapping[str, Any], where: str) -> Any:
    """A whitelisted expression of named numbers or arrays (sympy from solver.expressions,
    lambdified for NumPy as the backends do with the model's expressions)."""
    import sympy as sp

    from solver.expressions import parse_expression

    expr = parse_expression(text, values.keys(), where)
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    fn = sp.lambdify(symbols, expr, modules="numpy")
    with np.errstate(divide="ignore", invalid="ignore"):
        return fn(*(np.asarray(values[s.name], dtype=np.float64) for s in symbols))


def _expression(text: str, values: Mapping[str, float], where: str) -> float:
    return float(_evaluate(text, values, where))


def _reduce(spec: OutcomeSpec, t: np.ndarray, x: np.ndarray) -> float:
    if x.size == 0:
        return math.nan
    kind = spec.kind
    if kind == "final":
        return float(x[-1])
    if kind == "min":
        return float(np.min(x))
    if kind == "max":
        return float(np.max(x))
    if kind == "time_of_min":
        return float(t[int(np.argmin(x))])
    if kind == "time_of_max":
        return float(t[int(np.argmax(x))])
    if kind == "auc":
        return float(np.sum((x[1:] + x[:-1]) * np.diff(t)) / 2.0) if x.size > 1 else 0.0
    x0 = float(x[0])
    if kind == "nadir":
        return float(np.min(x)) / x0 if x0 != 0 else math.nan
    if kind == "fold_change":
        return float(x[-1]) / x0 if x0 != 0 else math.nan
    if kind == "regrowth":
        return regrowth_time(t, x)
    if kind == "time_below":
        level = spec.threshold * x0 if spec.relative else spec.threshold
        return time_below(t, x, level)
    if kind == "cure":
        return 1.0 if float(np.min(x)) < spec.below else 0.0
    raise AssertionError(f"unknown outcome kind {kind}")


def regrowth_time(t: np.ndarray, x: np.ndarray) -> float:
    """The first time after the minimum at which x is back at x[0] (linear between records);
    0.0 when x never falls below x[0], NaN when it has not regrown by the last record."""
    x0 = x[0]
    i_min = int(np.argmin(x))
    if x[i_min] >= x0:
        return 0.0
    for i in range(i_min + 1, x.size):
        if x[i] >= x0:
            a, b = x[i - 1], x[i]
            return float(t[i - 1] + (t[i] - t[i - 1]) * (x0 - a) / (b - a))
    return math.nan


def time_below(t: np.ndarray, x: np.ndarray, level: float) -> float:
    """Time during which the piecewise-linear x is below `level`."""
    total = 0.0
    for i in range(1, x.size):
        a, b, dt = x[i - 1] - level, x[i] - level, t[i] - t[i - 1]
        if a < 0 and b < 0:
            total += dt
        elif a < 0 <= b:
            total += dt * (-a) / (b - a)
        elif b < 0 <= a:
            total += dt * (-b) / (a - b)
    return float(total)


def total_doses(config: RunConfig) -> dict[str, float]:
    """Amount of each agent given up to time.end: boluses, and infusion rate x duration
    (cut at the end). Agents of the model without a dose are absent (count as 0)."""
    from solver.model import treatment_specs
    from solver.systemic.schedule import expand_schedule

    if not config.treatment:
        return {}
    schedule = expand_schedule(treatment_specs(config), config.time.end)
    end = config.time.end
    out: dict[str, float] = {}
    for agent, boluses in schedule.boluses.items():
        out[agent] = out.get(agent, 0.0) + sum(b.amount for b in boluses if b.time <= end)
    for agent, infusions in schedule.infusions.items():
        out[agent] = out.get(agent, 0.0) + sum(i.rate * max(0.0, min(i.stop, end) - i.start) for i in infusions)
    return out


def pareto_front(values: np.ndarray, better: list[str]) -> np.ndarray:
    """For points (n, k) and each column's better direction ("lower" or "higher"), the
    points that no other point beats (at least as good in every column, better in one).
    Rows with a NaN are never on the front."""
    v = np.asarray(values, dtype=np.float64).copy()
    for j, way in enumerate(better):
        if way == "higher":
            v[:, j] = -v[:, j]
    ok = ~np.isnan(v).any(axis=1)
    front = np.zeros(len(v), dtype=bool)
    for i in np.flatnonzero(ok):
        others = v[ok]
        dominated = np.any(np.all(others <= v[i], axis=1) & np.any(others < v[i], axis=1))
        front[i] = not dominated
    return front
