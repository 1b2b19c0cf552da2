"""The report of a study folder: a heatmap, an efficacy-toxicity scatter with its Pareto
front, overlaid time series and a Markdown table (matplotlib, no window needed).

Public API:
    make_report(out, output=None, x=None, y=None, value=None, efficacy=None, toxicity=None,
                members=None, series=None) -> StudyReport
    StudyReport                         the files written and the choices made
    heatmap_figure(frame, x, y, value, units="") -> Figure
    pareto_figure(frame, efficacy, toxicity, better, base_id=None, best_id=None) -> Figure
    markdown_table(frame, columns, ...) -> str

Written into DIR/report/ (or `output`): heatmap.png (the mean of `value` over the members
at each (x, y): replicates and other varied keys averaged), pareto.png (one point per
finished member; the front: members no other member beats on both outcomes, each in
its `better` direction), timeseries.png (the best member on the efficacy outcome, the
base member and any chosen members, through solver.viz.compare_runs), summary.md (the
table, with the front marked); with a cohort also cohort.md, cohort.csv (response rates
and outcome quartiles per regimen) and cohort.png (each regimen's patients). Keys not given come from the study's `report:` section,
else: the first two varied keys with more than one value; final_burden (efficacy) and
lymphocyte_nadir (toxicity) when the study has them, else its first outcomes with a
`better` direction.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from solver.errors import ConfigError, TumorsimError
from solver.study.outcomes import pareto_front

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)
REPORT_DIR = "report"
_DEFAULT_EFFICACY = "final_burden"
_DEFAULT_TOXICITY = "lymphocyte_nadir"


@dataclass
class StudyReport:
    """What make_report wrote and chose."""

    folder: Path
    files: list[Path] = field(default_factory=list)
    heatmap: tuple[str, str, str] | None = None  # x, y, value
    efficacy: str | None = None
    toxicity: str | None = None
    front: list[str] = field(default_factory=list)  # member ids on the Pareto front
    best: str | None = None
    notes: list[str] = field(default_factory=list)


def make_report(
    out: str | Path,
    output: str | Path | None = None,
    x: str | None = None,
    y: str | None = None,
    value: str | None = None,
    efficacy: str | None = None,
    toxicity: str | None = None,
    members: list[str] | None = None,
    series: list[str] | None = None,
) -> StudyReport:
    """Write the report of the study folder `out` (see the module docstring).

    Raises:
        ConfigError: not a study folder, or a key, outcome or member id it does not have
            (the valid ones are named).
        TumorsimError: no member has finished yet.
    """
    from solver.study.engine import load_summary, read_meta
    from solver.viz import import_optional

    import_optional("matplotlib", "study reports")
    out = Path(out)
    meta = read_meta(out)
    frame = load_summary(out)
    spec = meta.get("report") or {}
    outcomes: dict[str, dict[str, Any]] = meta.get("outcomes") or {}
    better = {n: o.get("better") for n, o in outcomes.items()}
    done = frame[frame["status"] == "done"]
    if done.empty:
        raise TumorsimError(f"study {str(out)!r} has no finished member yet ({len(frame)} pending or failed)")
    report = StudyReport(Path(output) if output else out / REPORT_DIR)
    report.folder.mkdir(parents=True, exist_ok=True)
    report.efficacy = _outcome(efficacy or spec.get("efficacy"), outcomes, better, _DEFAULT_EFFICACY, 0, "efficacy")
    report.toxicity = _outcome(toxicity or spec.get("toxicity"), outcomes, better, _DEFAULT_TOXICITY, 1, "toxicity")
    design = done[done["index"] < meta.get("design_members", len(frame))]
    heat = spec.get("heatmap") or {}
    regimen_columns = [c for c in meta["columns"] if c not in set(meta.get("cohort_columns") or []) | {"regimen"}]
    report.heatmap = _heatmap_keys(x or heat.get("x"), y or heat.get("y"), value or heat.get("value") or report.efficacy,
                                   regimen_columns, outcomes, design)
    if report.heatmap is not None:
        hx, hy, hv = report.heatmap
        fig = heatmap_figure(design, hx, hy, hv, outcomes.get(hv, {}).get("units", ""))
        report.files.append(_save(fig, report.folder / "heatmap.png"))
    else:
        report.notes.append("no heatmap: the study varies fewer than two keys with more than one numeric value")
    base_id = meta.get("base_id")
    if report.efficacy is not None:
        best = done.sort_values(report.efficacy, ascending=better.get(report.efficacy) != "higher")
        best = best[np.isfinite(best[report.efficacy].astype(float))]
        report.best = str(best["id"].iloc[0]) if len(best) else None
    if report.efficacy is not None and report.toxicity is not None:
        ways = [better.get(report.efficacy) or "lower", better.get(report.toxicity) or "lower"]
        front = pareto_front(done[[report.efficacy, report.toxicity]].to_numpy(dtype=float), ways)
        report.front = [str(i) for i in done["id"][front]]
        fig = pareto_figure(done, report.efficacy, report.toxicity, ways, base_id, report.best, outcomes)
        report.files.append(_save(fig, report.folder / "pareto.png"))
    report.files.append(_overlay(out, report, frame, base_id, members or spec.get("members") or [],
                                 series or spec.get("series") or ["tumour_burden", "C"]))
    table = markdown_table(frame, meta["columns"], list(outcomes), report, meta, better)
    (report.folder / "summary.md").write_text(table, encoding="utf-8")
    report.files.append(report.folder / "summary.md")
    if meta.get("cohort"):
        report.files += cohort_report(frame, meta, report.folder)
    return report


def cohort_report(frame: Any, meta: dict[str, Any], folder: Path) -> list[Path]:
    """cohort.md and cohort.csv (response rates and outcome quartiles per regimen) and
    cohort.png (each regimen's patients) of a study with a cohort (solver/study/cohort.py)."""
    from solver.study.cohort import cohort_figure, response_markdown, response_table

    table = response_table(frame, meta)
    (folder / "cohort.md").write_text(response_markdown(table, meta), encoding="utf-8")
    table.to_csv(folder / "cohort.csv", index=False)
    return [folder / "cohort.md", folder / "cohort.csv", _save(cohort_figure(frame, meta), folder / "cohort.png")]


def _outcome(name: str | None, outcomes: dict[str, Any], better: dict[str, Any], default: str, rank: int,
             what: str) -> str | None:
    if name is not None:
        if name not in outcomes:
            raise ConfigError(f"--{what}: no outcome {name!r} in this study; outcomes: {', '.join(outcomes) or 'none'}")
        return name
    if default in outcomes:
        return default
    ranked = [n for n, way in better.items() if way]
    return ranked[rank] if len(ranked) > rank else None


def _heatmap_keys(x: str | None, y: str | None, value: str | None, columns: list[str], outcomes: dict[str, Any],
                  frame: Any) -> tuple[str, str, str] | None:
    for key, flag in ((x, "--x"), (y, "--y")):
        if key is not None and key not in columns:
            raise ConfigError(f"{flag}: {key!r} is not a varied key of this study; varied: {', '.join(columns) or 'none'}")
    if value is not None and value not in outcomes:
        raise ConfigError(f"--value: no outcome {value!r} in this study; outcomes: {', '.join(outcomes) or 'none'}")
    numeric = [c for c in columns if _is_numeric(frame[c]) and frame[c].nunique() > 1]
    chosen = [k for k in (x, y) if k is not None]
    chosen += [c for c in numeric if c not in chosen][: 2 - len(chosen)]
    if len(chosen) < 2 or value is None:
        return None
    return chosen[0], chosen[1], value


def _is_numeric(column: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(column)) and not bool(pd.api.types.is_bool_dtype(column))


def heatmap_figure(frame: Any, x: str, y: str, value: str, units: str = "") -> Figure:
    """The mean of `value` over the members at each (x, y), as coloured cells with their numbers."""
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    table = frame.pivot_table(index=y, columns=x, values=value, aggfunc="mean")
    counts = frame.pivot_table(index=y, columns=x, values=value, aggfunc="count")
    data = table.to_numpy(dtype=float)
    fig = Figure(figsize=(1.2 * len(table.columns) + 3.0, 0.8 * len(table.index) + 2.2), layout="constrained")
    ax = fig.add_subplot()
    finite = data[np.isfinite(data)]
    norm = LogNorm(finite.min(), finite.max()) if finite.size and finite.min() > 0 and finite.max() / finite.min() > 100 else None
    image = ax.imshow(data, origin="lower", aspect="auto", cmap="viridis", norm=norm)
    for (i, j), v in np.ndenumerate(data):
        if math.isfinite(v):
            shade = image.norm(v)
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=8, color="white" if shade < 0.5 else "black")
    ax.set_xticks(range(len(table.columns)), [f"{c:g}" for c in table.columns])
    ax.set_yticks(range(len(table.index)), [f"{r:g}" for r in table.index])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    filled = counts.to_numpy(dtype=float)
    filled = filled[np.isfinite(filled)]  # a zip or sampled design leaves cells of the grid empty
    per = int(filled.max()) if filled.size else 1
    ax.set_title(f"{value}" + (f" (mean of {per} members per cell)" if per > 1 else ""))
    fig.colorbar(image, ax=ax, label=f"{value} [{units}]" if units else value)
    return fig


def pareto_figure(frame: Any, efficacy: str, toxicity: str, better: list[str], base_id: str | None = None,
                  best_id: str | None = None, outcomes: dict[str, Any] | None = None) -> Figure:
    """Efficacy against toxicity, one point per member; the Pareto front joined and ringed."""
    from matplotlib.figure import Figure

    outcomes = outcomes or {}
    points = frame[[efficacy, toxicity]].to_numpy(dtype=float)
    front = pareto_front(points, better)
    fig = Figure(figsize=(6.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(points[~front, 0], points[~front, 1], s=28, color="0.6", label="members", zorder=2)
    order = np.argsort(points[front, 0])
    ax.plot(points[front, 0][order], points[front, 1][order], "-o", color="tab:red", ms=7, mfc="none", mew=1.6,
            label=f"Pareto front ({int(front.sum())})", zorder=3)
    ids = list(frame["id"])
    for member, marker, label in ((base_id, "*", "base"), (best_id, "D", f"best {efficacy}")):
        if member in ids:
            k = ids.index(member)
            ax.scatter(points[k, 0], points[k, 1], s=130 if marker == "*" else 60, marker=marker, color="tab:blue",
                       label=label, zorder=4)
    finite = points[np.isfinite(points).all(axis=1)]
    if finite.size and finite[:, 0].min() > 0 and finite[:, 0].max() / finite[:, 0].min() > 100:
        ax.set_xscale("log")
    for axis_set, name, way in ((ax.set_xlabel, efficacy, better[0]), (ax.set_ylabel, toxicity, better[1])):
        units = outcomes.get(name, {}).get("units", "")
        axis_set(f"{name}{f' [{units}]' if units else ''} ({way} is better)")
    ax.set_title("efficacy against toxicity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _overlay(out: Path, report: StudyReport, frame: Any, base_id: str | None, chosen: list[str], series: list[str]) -> Path:
    """timeseries.png: the best member, the base and the chosen members overlaid."""
    from solver.io.run_file import load_run
    from solver.viz import compare_runs

    ids = list(frame["id"])
    done = set(frame["id"][frame["status"] == "done"])
    for member in chosen:
        if member not in ids:
            raise ConfigError(f"--members: no member {member!r} in this study; ids are the summary's `id` column")
        if member not in done:
            raise ConfigError(f"--members: member {member!r} has not finished (status "
                              f"{frame['status'][ids.index(member)]})")
    picks: list[tuple[str, str]] = []
    for member, label in ((report.best, "best"), (base_id, "base")):
        if member in done and member not in [p for p, _ in picks]:
            picks.append((member, label))
        elif member in done:
            picks = [(p, f"{lab} = {label}" if p == member else lab) for p, lab in picks]
    picks += [(m, "member") for m in chosen if m not in [p for p, _ in picks]]
    runs = [load_run(out / "members" / m) for m, _ in picks]
    have = [s for s in series if all(s in r.series for r in runs)]
    if not have:
        raise ConfigError(f"--series: none of {', '.join(series)} is in the members' time series")
    labels = [f"{label} ({m})" for m, label in picks]
    return compare_runs(runs, report.folder / "timeseries.png", series=have, labels=labels)


def markdown_table(frame: Any, columns: list[str], outcomes: list[str], report: StudyReport, meta: dict[str, Any],
                   better: dict[str, Any]) -> str:
    """The summary as a Markdown table: varied values, the main outcomes, status; front marked."""
    counts = frame["status"].value_counts().to_dict()
    main = [o for o in (report.efficacy, report.toxicity, "min_burden", "regrowth_day", "cured",
                        "days_lymphocytes_below_half") if o in outcomes and o is not None]
    main = list(dict.fromkeys(main)) or outcomes[:4]
    intro = (f"{len(frame)} members ({', '.join(f'{n} {s}' for s, n in counts.items())}); base config "
             f"`{Path(str(meta.get('base'))).name}`. Pareto front (★): no other member is better on both "
             f"{report.efficacy} ({better.get(report.efficacy) or 'lower'} is better) and {report.toxicity} "
             f"({better.get(report.toxicity) or 'lower'} is better).")
    lines = [f"# Study {meta.get('name')}", "", intro, ""]
    head = ["#", "id", *columns, *main, "status", ""]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join("---" for _ in head) + "|")
    for _, row in frame.iterrows():
        flags = ("★" if row["id"] in report.front else "") + (" base" if bool(row["base"]) else "") + \
                (" best" if row["id"] == report.best else "")
        cells = [str(row["index"]), f"`{row['id']}`", *(_cell(row[c]) for c in columns), *(_cell(row[o]) for o in main),
                 row["status"] + (f": {row['error']}" if row["status"] == "failed" else ""), flags.strip()]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *(f"Note: {n}." for n in report.notes)]
    return "\n".join(lines).rstrip() + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=130)
    log.info("wrote %s", path)
    return path
