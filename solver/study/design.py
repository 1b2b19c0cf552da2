"""The members of a study: its varied values combined, replicated and derived.

Public API:
    DesignPoint                 one member's values (by column) and the config overrides they give
    design_points(spec, base_seeds, patients=()) -> list[DesignPoint]
    unit_samples(combine, n, d, seed) -> np.ndarray    points in [0, 1)^d of a sampling design
    entry_value(entry, u) -> value                     a vary entry's value at u in [0, 1)
    evaluate_derived(text, variables, where) -> float  a `derive` expression through the whitelist

Combining (`combine:`):
    product          every combination, the first entry varying slowest
    zip              the i-th value of every entry together (all as long)
    random           `samples` independent uniform points (numpy's default_rng(seed))
    latin-hypercube  scipy.stats.qmc.LatinHypercube(d, rng=seed): one point per stratum per axis
    sobol            scipy.stats.qmc.Sobol(d, scramble=True, rng=seed); a power of 2 samples

In a sampling design an entry with a distribution takes its inverse CDF at the point;
an entry with a list of values (values, range, linspace, logspace) takes the value of the
stratum the point falls in. Replicates repeat every point `count` times, replicate r
setting each seed key to its base value + r. With a cohort (solver/study/cohort.py)
every point and replicate runs once per patient, with a `regimen` column numbering the
points. Derived values are expressions of the
study variables (vary names without '.' or '[') and `replicate`, parsed by
solver.expressions.parse_expression (whitelisted, never eval'd).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from solver.config.overrides import Override, as_override
from solver.errors import ConfigError
from solver.study.cohort import REGIMEN, Patient, patient_overrides, patient_values
from solver.study.spec import SAMPLING_DESIGNS, Distribution, StudySpec, VaryEntry, is_config_key


@dataclass(frozen=True)
class DesignPoint:
    """One member before its config is resolved.

    Attributes:
        index: Position in the study (0-based), the order of the summary's rows.
        values: Column -> value: every vary name, every derived key, and `replicate`
            when the study has more than one.
        overrides: solver.config.Override objects in the order they apply: the study's
            `set`, then varied keys, derived keys and replicate seeds (each names its
            section as its origin, for messages).
        replicate: 0 for the first (or only) replicate.
    """

    index: int
    values: dict[str, Any]
    overrides: tuple[Override, ...]
    replicate: int = 0


def design_points(spec: StudySpec, base_seeds: Mapping[str, int] | None = None,
                  patients: Sequence[Patient] = ()) -> list[DesignPoint]:
    """Every member of the study, in order.

    Args:
        spec: the validated study.
        base_seeds: seed key -> its value in the base config, for replicates (solver/study/
            members.py finds them); required when replicates.count > 1.
        patients: the cohort's patients (solver.study.cohort.sample_cohort), when it has one.

    Raises:
        ConfigError: a derived value that cannot be computed (a text variable in it, an
            unknown name), a seed key that is also varied, or replicates without seeds.
    """
    names = list(spec.vary)
    combos = _combinations(spec)
    seeds = _replicate_seeds(spec, base_seeds or {})
    fixed = [as_override(item, "set") for item in spec.set.items()]
    points = []
    for number, combo in enumerate(combos):
        variables = dict(zip(names, combo))
        for r in range(spec.replicates.count):
            scope = {k: v for k, v in variables.items() if not is_config_key(k)}
            scope["replicate"] = r
            derived = {key: evaluate_derived(text, scope, f"derive.{key}") for key, text in spec.derive.items()}
            values = {**variables, **derived}
            if spec.replicates.count > 1:
                values["replicate"] = r
            overrides = [*fixed, *(as_override((spec.vary[k].key or k, v), "vary") for k, v in variables.items()
                                   if is_config_key(k) or spec.vary[k].key)]
            overrides += [as_override(item, "derive") for item in derived.items()]
            overrides += [as_override((key, base + r), "replicates") for key, base in seeds.items()]
            if not patients:
                points.append(DesignPoint(len(points), values, tuple(overrides), r))
            for patient in patients:
                cohort = [as_override(item, "cohort") for item in patient_overrides(patient)]
                row = {REGIMEN: number, **values, **patient_values(patient, spec.cohort)}
                points.append(DesignPoint(len(points), row, (*overrides, *cohort), r))
    return points


def _combinations(spec: StudySpec) -> list[tuple[Any, ...]]:
    entries = list(spec.vary.values())
    if not entries:
        return [()]
    if spec.combine == "product":
        return list(itertools.product(*(e.grid_values() for e in entries)))
    if spec.combine == "zip":
        return list(zip(*(e.grid_values() for e in entries)))
    assert spec.combine in SAMPLING_DESIGNS and spec.samples is not None
    u = unit_samples(spec.combine, spec.samples, len(entries), spec.seed)
    return [tuple(entry_value(e, float(u[i, j])) for j, e in enumerate(entries)) for i in range(spec.samples)]


def unit_samples(combine: str, n: int, d: int, seed: int) -> np.ndarray:
    """`n` points in [0, 1)^d of the sampling design `combine`, reproducible from `seed`."""
    if combine == "random":
        return np.random.default_rng(seed).random((n, d))
    from scipy.stats import qmc

    if combine == "latin-hypercube":
        return qmc.LatinHypercube(d, rng=seed).random(n)
    if combine == "sobol":
        return qmc.Sobol(d, scramble=True, rng=seed).random_base2(int(math.log2(n)))
    raise ConfigError(f"combine: {combine!r} is not a sampling design; designs: {', '.join(SAMPLING_DESIGNS)}")


def entry_value(entry: VaryEntry, u: float) -> Any:
    """The value of a vary entry at the design point u in [0, 1)."""
    if entry.distribution is not None:
        return _inverse_cdf(entry.distribution, u)
    values = entry.grid_values()
    return values[min(int(u * len(values)), len(values) - 1)]


def _inverse_cdf(dist: Distribution, u: float) -> float:
    u = min(max(u, 1e-12), 1.0 - 1e-12)
    if dist.kind == "uniform":
        return dist.low + u * (dist.high - dist.low)
    if dist.kind == "loguniform":
        return math.exp(math.log(dist.low) + u * (math.log(dist.high) - math.log(dist.low)))
    if dist.kind == "integers":
        low, high = int(dist.low), int(dist.high)
        return min(low + int(u * (high - low + 1)), high)
    from scipy.stats import norm

    z = float(norm.ppf(u))
    if dist.kind == "normal":
        return dist.mean + dist.sd * z
    return dist.median * math.exp(dist.sigma * z)  # lognormal


def evaluate_derived(text: str | float, variables: Mapping[str, Any], where: str) -> float:
    """The value of a derived expression of the study variables (whitelisted, never eval'd).

    Raises:
        ConfigError: a name that is not a study variable, a text variable, or a value
            that is not a finite number.
    """
    from solver.expressions import parse_expression

    expr = parse_expression(text, variables.keys(), where)
    subs = {}
    for symbol in expr.free_symbols:
        value = variables[symbol.name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: variable {symbol.name!r} is {value!r}, not a number")
        subs[symbol] = value
    result = expr.xreplace(subs).evalf() if subs else expr.evalf()
    try:
        number = float(result)
    except TypeError:
        raise ConfigError(f"{where}: {text!r} does not give a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"{where}: {text!r} gives {number} with {dict(variables)}")
    return number


def _replicate_seeds(spec: StudySpec, base_seeds: Mapping[str, int]) -> dict[str, int]:
    """Seed key -> base value, for the replicates (empty for a single replicate)."""
    count, keys = spec.replicates.count, spec.replicates.keys
    if count == 1:
        return {}
    if keys is None:
        if not base_seeds:
            raise ConfigError("replicates: the base config has no random seed (no generated vessel map), so "
                              "replicates would not differ; give replicates.keys or drop replicates")
        chosen = dict(base_seeds)
    else:
        missing = [k for k in keys if k not in base_seeds]
        if missing:
            known = ", ".join(base_seeds) or "none"
            raise ConfigError(f"replicates.keys: {missing[0]!r} is not a seed of the base config; seeds: {known}")
        chosen = {k: base_seeds[k] for k in keys}
    varied = {spec.vary[k].key or k for k in spec.vary} | set(spec.derive)
    for key in chosen:
        if key in varied:
            raise ConfigError(f"replicates: seed {key!r} is also varied; replicates vary the seeds themselves")
    return chosen
