"""What `tumorsim optimise` writes: the trials table, the Pareto set as a table and as
ready-to-run configs, the front against the base and reference arms, the best feasible
regimen's time series against the base.

Public API:
    trials_frame(search, study) -> pandas.DataFrame     one row per trial (abandoned ones left out)
    write_trials(search, study, out) -> DataFrame       DIR/trials.csv and DIR/trials.parquet
    arms_frame(search, results) -> DataFrame            the base and reference arms' values
    write_outputs(search, study, frame, results, out) -> list[Path]
    front_figure(frame, arms, meta) -> Figure
    pareto_markdown(frame, arms, search) -> str
    dry_run_lines(search) -> list[str]                  what a search would do (--dry-run)

Columns of the trials table: trial, state (COMPLETE, FAIL, RUNNING), every variable,
every derived key, every objective and constraint value (over a cohort named with its
statistic, e.g. final_burden_mean), feasible (every constraint met), pareto (feasible and
no other feasible trial at least as good on every objective and better on one; of trials
with the same physics, the first), best
(the feasible trial best on the first objective), members (the member ids, one per
patient), error. The Pareto table and the configs are of the feasible front.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from solver.study.engine import MEMBERS_DIR
from solver.study.outcomes import pareto_front

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# `search` below is a solver.study.optimise.Search (not imported: that module imports this one).
Search = Any

log = logging.getLogger(__name__)
PARETO_DIR = "pareto"


def _value_columns(search: Search) -> list[str]:
    return list(dict.fromkeys([*search.objective_columns, *search.constraint_columns]))


def _better(search: Search) -> list[str]:
    return ["lower" if d == "minimize" else "higher" for d in search.directions]


def trials_frame(search: Search, study: Any) -> Any:
    """One row per trial of the stored search (see the module docstring)."""
    import pandas as pd

    rows = []
    where = search.opt.study.source
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("abandoned"):
            continue
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name}
        row.update({n: t.params.get(n) for n in search.variables})
        derived = search.point(dict(t.params), where)[0] if set(t.params) == set(search.variables) else {}
        row.update({k: derived.get(k) for k in search.spec.derive})
        values = t.user_attrs.get("values") or {}
        row.update({c: _float(values.get(c)) for c in _value_columns(search)})
        constraints = t.user_attrs.get("constraints") or []
        row["feasible"] = t.state.name == "COMPLETE" and all(c <= 0 for c in constraints)
        row["members"] = ",".join(t.user_attrs.get("members") or [])
        row["error"] = t.user_attrs.get("error") or ""
        rows.append(row)
    columns = ["trial", "state", *search.variables, *search.spec.derive, *_value_columns(search), "feasible",
               "pareto", "best", "members", "error"]
    frame = pd.DataFrame(rows, columns=[c for c in columns if c not in ("pareto", "best")])
    frame["pareto"], frame["best"] = _front_and_best(frame, search)
    return frame[columns]


def _front_and_best(frame: Any, search: Search) -> tuple[Any, Any]:
    pareto = np.zeros(len(frame), dtype=bool)
    best = np.zeros(len(frame), dtype=bool)
    feasible = frame["feasible"].to_numpy(dtype=bool) if len(frame) else pareto
    if feasible.any():
        values = frame[search.objective_columns].to_numpy(dtype=float)
        idx = np.flatnonzero(feasible)
        pareto[idx] = pareto_front(values[idx], _better(search))
        seen = set()
        for i in np.flatnonzero(pareto):  # trials that share their members (the same physics): the first
            key = frame["members"].iloc[i]
            pareto[i] = key not in seen
            seen.add(key)
        first = values[idx, 0] * (1 if search.directions[0] == "minimize" else -1)
        best[idx[int(np.nanargmin(first))]] = True
    return pareto, best


def _float(value: Any) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def write_trials(search: Search, study: Any, out: Path) -> Any:
    """DIR/trials.csv and DIR/trials.parquet (temporary file, rename); returns the frame."""
    frame = trials_frame(search, study)
    for name, write in (("trials.parquet", lambda p: frame.to_parquet(p, index=False)),
                        ("trials.csv", lambda p: frame.to_csv(p, index=False))):
        tmp = out / f".{name}.tmp"
        write(tmp)
        os.replace(tmp, out / name)
    return frame


def arms_frame(search: Search, results: dict[str, dict[str, Any]]) -> Any:
    """The base and reference arms: their objective and constraint values and feasibility."""
    import pandas as pd

    rows = []
    for label, members in search.arms.items():
        score = search.scores(members, results)
        row = {"arm": label, **{c: _float(score["values"].get(c)) for c in _value_columns(search)}}
        row["feasible"] = score["error"] is None and all(c <= 0 for c in score["constraints"] or [])
        row["members"] = ",".join(m.id for m in members)
        row["error"] = score["error"] or ""
        rows.append(row)
    return pd.DataFrame(rows, columns=["arm", *_value_columns(search), "feasible", "members", "error"])


def write_outputs(search: Search, study: Any, frame: Any, results: dict[str, dict[str, Any]], out: Path) -> list[Path]:
    """The Pareto table (pareto.csv, pareto.md), the front's configs (pareto/trial-N.yaml),
    arms.csv, front.png and best_timeseries.png. Returns the files written."""
    import yaml

    arms = arms_frame(search, results)
    files = []
    arms.to_csv(out / "arms.csv", index=False)
    files.append(out / "arms.csv")
    front = frame[frame["pareto"]].sort_values(search.objective_columns[0],
                                                ascending=search.directions[0] == "minimize")
    front.to_csv(out / "pareto.csv", index=False)
    (out / "pareto.md").write_text(pareto_markdown(frame, arms, search), encoding="utf-8")
    files += [out / "pareto.csv", out / "pareto.md"]
    (out / PARETO_DIR).mkdir(exist_ok=True)
    for _, row in front.iterrows():
        params = {n: _plain(row[n]) for n in search.variables}
        values, changes = search.point(params, search.opt.study.source)
        name = f"{search.opt.name}-trial{int(row['trial'])}"
        config = search.regimen_config(values, changes, name)
        if config is None:
            continue
        path = out / PARETO_DIR / f"trial-{int(row['trial']):04d}.yaml"
        scores = ", ".join(f"{c} {row[c]:.4g}" for c in _value_columns(search))
        head = (f"# Trial {int(row['trial'])} of optimisation {search.opt.name!r}, on its Pareto front: {scores}.\n"
                + ("# Over the cohort; this config is the regimen on the base config's own patient.\n"
                   if search.spec.cohort is not None else "")
                + f"# Run it: tumorsim run {path.name}\n")
        path.write_text(head + yaml.safe_dump(config, sort_keys=False, default_flow_style=None), encoding="utf-8")
        files.append(path)
    if frame["state"].eq("COMPLETE").any():
        files.append(_save(front_figure(frame, arms, search), out / "front.png"))
        series = _best_series(search, frame, out)
        if series is not None:
            files.append(series)
    return files


def _plain(value: Any) -> Any:
    """A pandas cell as the plain Python value optuna stored (numpy ints and floats unwrapped)."""
    return value.item() if hasattr(value, "item") else value


def _cell(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def pareto_markdown(frame: Any, arms: Any, search: Search) -> str:
    """The feasible Pareto front as Markdown, best on the first objective first, then the arms."""
    columns = [*search.variables, *search.spec.derive]
    values = _value_columns(search)
    complete = frame[frame["state"] == "COMPLETE"]
    front = frame[frame["pareto"]].sort_values(search.objective_columns[0], ascending=search.directions[0] == "minimize")
    goals = ", ".join(f"{d.removesuffix('ize')}ise {c}" for c, d in zip(search.objective_columns, search.directions))
    rules = ", ".join(f"{col} {'>= ' + format(c.min, 'g') if c.min is not None else ''}"
                      f"{' and ' if c.min is not None and c.max is not None else ''}"
                      f"{'<= ' + format(c.max, 'g') if c.max is not None else ''}"
                      for col, c in zip(search.constraint_columns, search.spec.constraints)) or "none"
    lines = [f"# Optimisation {search.opt.name}", "",
             (f"{len(frame)} trials ({len(complete)} complete, {int(complete['feasible'].sum())} feasible, "
              f"{int((frame['state'] == 'FAIL').sum())} failed); {goals}; constraints: {rules}. "
              f"Pareto front of the feasible trials ({len(front)}), best on {search.objective_columns[0]} first:"), ""]
    head = ["trial", *columns, *values, ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for _, row in front.iterrows():
        cells = [str(int(row["trial"])), *(_cell(row[c]) for c in columns), *(_cell(row[c]) for c in values),
                 "best" if row["best"] else ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Arms (run once each):", "", "| arm | " + " | ".join(values) + " | feasible |",
              "|---|" + "|".join("---" for _ in values) + "|---|"]
    for _, row in arms.iterrows():
        lines.append(f"| {row['arm']} | " + " | ".join(_cell(row[c]) for c in values) + f" | {_cell(row['feasible'])} |")
    return "\n".join(lines) + "\n"


def front_figure(frame: Any, arms: Any, search: Search) -> Figure:
    """Two or more objectives: the first two, every complete trial (feasible dots,
    infeasible crosses), the feasible front joined, the arms marked. One objective: its
    value per trial with the running best feasible value, the arms as lines."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.8, 5.0), layout="constrained")
    ax = fig.add_subplot()
    complete = frame[frame["state"] == "COMPLETE"]
    feasible = complete[complete["feasible"]]
    infeasible = complete[~complete["feasible"]]
    cols = search.objective_columns
    markers = ["*", "D", "s", "^", "v", "P", "X"]
    if len(cols) >= 2:
        x, y = cols[0], cols[1]
        values = np.concatenate([complete[x].to_numpy(dtype=float), arms[x].to_numpy(dtype=float)]
                                if len(arms) else [complete[x].to_numpy(dtype=float)])
        values = values[np.isfinite(values)]
        # a log axis when the values span decades; values down to 0 (a tumour removed: 1e-30
        # and 0 are the same answer) drawn at a floor nine decades under the largest
        floor = None
        positive = values[values > 0]
        if positive.size and (values.min() <= 0 or positive.max() / positive.min() > 100):
            floor = positive.max() * 1e-9
            ax.set_xscale("log")

        def at(v: Any) -> Any:
            return v if floor is None else np.maximum(np.asarray(v, dtype=float), floor)

        ax.scatter(at(feasible[x]), feasible[y], s=26, color="0.55", label=f"feasible trials ({len(feasible)})",
                   zorder=2)
        if len(infeasible):
            ax.scatter(at(infeasible[x]), infeasible[y], s=26, marker="x", color="0.75",
                       label=f"infeasible trials ({len(infeasible)})", zorder=2)
        front = frame[frame["pareto"]].sort_values(x)
        ax.plot(at(front[x]), front[y], "-o", color="tab:red", ms=7, mfc="none", mew=1.6,
                label=f"Pareto front ({len(front)})", zorder=3)
        for k, (_, arm) in enumerate(arms.iterrows()):
            ax.scatter(at([arm[x]]), [arm[y]], s=150 if k == 0 else 70, marker=markers[k % len(markers)], zorder=4,
                       label=f"{arm['arm']}{'' if arm['feasible'] else ' (infeasible)'}")
        below = "" if floor is None else f"; values below {floor:.0e} drawn at it"
        ax.set_xlabel(f"{x} ({_way(search.directions[0])} is better{below})")
        ax.set_ylabel(f"{y} ({_way(search.directions[1])} is better)")
    else:
        x = cols[0]
        ax.scatter(feasible["trial"], feasible[x], s=22, color="0.55", label="feasible trials", zorder=2)
        if len(infeasible):
            ax.scatter(infeasible["trial"], infeasible[x], s=22, marker="x", color="0.75", label="infeasible trials")
        ordered = frame.sort_values("trial")
        sign = 1 if search.directions[0] == "minimize" else -1
        running = (ordered[x].where(ordered["feasible"]) * sign).cummin() * sign
        ax.step(ordered["trial"], running, where="post", color="tab:red", label="best feasible so far")
        for k, (_, arm) in enumerate(arms.iterrows()):
            ax.axhline(arm[x], ls="--", lw=1.0, color=f"C{k}", label=arm["arm"])
        ax.set_xlabel("trial")
        ax.set_ylabel(f"{x} ({_way(search.directions[0])} is better)")
    ax.set_title(f"optimisation {search.opt.name}: {len(complete)} trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _way(direction: str) -> str:
    return "lower" if direction == "minimize" else "higher"


def _best_series(search: Search, frame: Any, out: Path) -> Path | None:
    """best_timeseries.png: the best feasible trial's run against the base arm's (the first
    patient's, with a cohort); None when no feasible trial has finished."""
    from solver.io.run_file import load_run
    from solver.viz import compare_runs

    best = frame[frame["best"]]
    if best.empty:
        return None
    row = best.iloc[0]
    member = str(row["members"]).split(",")[0]
    base = search.arms["base"][0].id
    paths = [out / MEMBERS_DIR / member, out / MEMBERS_DIR / base]
    if not all((p / "run.h5").exists() for p in paths):
        return None
    runs = [load_run(p) for p in paths]
    series = [s for s in search.spec.report.series if all(s in r.series for r in runs)]
    if not series:
        return None
    who = " (patient 0)" if search.spec.cohort is not None else ""
    labels = [f"best feasible: trial {int(row['trial'])}{who}", f"base{who}"]
    return compare_runs(runs, out / "best_timeseries.png", series=series, labels=labels)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=130)
    log.info("wrote %s", path)
    return path


def dry_run_lines(search: Search) -> list[str]:
    """What the optimisation would do: variables, objectives, constraints, members per
    trial, and the arms. Writes nothing."""
    spec = search.spec
    per = len(search.resolved.patients) or 1
    lines = [(f"optimisation {search.opt.name!r} from {search.opt.study.source} (base {search.opt.study.base_source}): "
              f"{spec.trials} trials of {per} member(s) each, {spec.sampler_kind} (seed {spec.sampler.seed}), "
              f"batches of {spec.batch_size}")]
    for name, v in spec.variables.items():
        if v.kind == "float":
            what = f"{v.low:g} .. {v.high:g}" + (" (log)" if v.log else "") + (f" step {v.step:g}" if v.step else "")
        elif v.kind == "int":
            what = f"integers {int(v.low)} .. {int(v.high)}"
        elif v.kind == "categorical":
            what = f"one of {', '.join(map(str, v.choices))}"
        else:
            what = f"one of the cases {', '.join(v.cases)}"
        key = f" -> {v.key}" if v.key else ""
        lines.append(f"  variable {name}{key}: {what}")
    for column, d in zip(search.objective_columns, search.directions):
        lines.append(f"  objective: {d} {column}")
    for column, c in zip(search.constraint_columns, spec.constraints):
        bounds = " and ".join(b for b in (f">= {c.min:g}" if c.min is not None else "", f"<= {c.max:g}" if c.max is not None else "") if b)
        lines.append(f"  constraint: {column} {bounds}")
    for label, members in search.arms.items():
        lines.append(f"  arm {label}: {len(members)} member(s) ({members[0].id}{', ...' if len(members) > 1 else ''})")
    return lines

