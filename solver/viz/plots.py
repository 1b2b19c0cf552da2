"""Time-series figures of one run or several, with matplotlib (no GUI backend needed).

Public API:
    plot_timeseries(run, out, series=None, logy=None, mark_doses=True, title=None) -> Path
    compare_runs(runs, out, series=None, labels=None, logy=None, mark_doses=True) -> Path
    timeseries_figure(runs, series=None, labels=None, ...) -> matplotlib.figure.Figure
    default_series(run) -> list[str]

One panel per series (they differ by orders of magnitude), stacked over a shared time axis;
one line per run in each panel. The default series are the run's config's
``output.pictures.series``, else solver/viz/pictures.py ``default_series`` (no plasma level of
an agent never given). Dose times from the run file's ``dose_times_json`` are marked in a
panel of their own under the series: one row per agent (per run and agent when comparing),
so doses at the same time never hide each other; one colour per agent for one run, each
run's own line colour when comparing. Lines carry a matplotlib ``gid``
(``series:<name>:<run label>`` and ``dose:<agent>:<run label>``), which an SVG keeps as
element ids.

Figures are made with ``matplotlib.figure.Figure`` directly, never through pyplot, so no
window, display or global backend is involved; the output format follows the suffix.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from solver.io.run_file import RunData, RunFileError, load_run
from solver.io.safe_files import replaced
from solver.text import display_unit
from solver.viz import VizError, import_optional
from solver.viz.pictures import DEFAULT_SERIES_PATTERNS, picture_plan

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_SERIES_PATTERNS", "compare_runs", "default_series", "plot_timeseries", "timeseries_figure"]
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
_LOG_DECADES = 3.0
_PANEL_HEIGHT_IN = 2.0
_FIGURE_WIDTH_IN = 7.5


def default_series(run: RunData) -> list[str]:
    """The series to draw when none are named: the config's ``output.pictures.series``, else
    those of solver.viz.pictures.default_series."""
    return list(picture_plan(run).series)


def timeseries_figure(
    runs: Sequence[RunData],
    series: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    *,
    logy: bool | None = None,
    mark_doses: bool = True,
    title: str | None = None,
) -> Figure:
    """A figure with one panel per series and one line per run in each.

    Args:
        runs: Loaded runs (one or more).
        series: Series names (default: ``default_series`` of each run, in first-seen order).
        labels: Legend label per run (default: each run's name, made unique).
        logy: Log scale for the y axis; None picks it per panel: log for the series named in
            the config's ``output.pictures.log``, or when the positive values span more
            than three decades.
        mark_doses: Mark dose times in a panel under the series, a row per agent (and run).
        title: Figure title (default: the run's name for one run, none for several).

    Raises:
        RunFileError: No runs, a run without time series, or a series no run has (the
            message lists the series present).
        VizError: ``labels`` of the wrong length.
    """
    import_optional("matplotlib", "plots")
    from matplotlib.figure import Figure

    if not runs:
        raise RunFileError("no runs to plot")
    for run in runs:
        if not run.series:
            raise RunFileError(f"{run.path.name} holds no time series (/timeseries)")
    names = _choose_series(runs, series)
    run_labels = _run_labels(runs, labels)

    rows = _dose_rows(runs, run_labels) if mark_doses else []
    heights = [_PANEL_HEIGHT_IN] * len(names) + ([0.35 + 0.22 * len(rows)] if rows else [])
    fig = Figure(figsize=(_FIGURE_WIDTH_IN, 1.0 + sum(heights)), layout="constrained")
    every = fig.subplots(len(heights), 1, sharex=True, squeeze=False, height_ratios=heights)[:, 0]
    axes = every[: len(names)]
    colours = [f"C{i % 10}" for i in range(len(runs))]
    log_named = set().union(*(picture_plan(run).log for run in runs)) if logy is None else set()
    for ax, name in zip(axes, names):
        for run, label, colour in zip(runs, run_labels, colours):
            if name not in run.series:
                log.warning("%s has no series %r; left out of that panel", run.name, name)
                continue
            (line,) = ax.plot(run.series_time, run.series[name], color=colour, lw=1.5, label=label)
            line.set_gid(f"series:{name}:{label}")
        label = _first_with(runs, name).series_label(name)
        ax.set_ylabel(label.replace(" [", "\n[") if len(label) > 22 else label)  # long ones on two lines
        _set_yscale(ax, [run.series[name] for run in runs if name in run.series], True if name in log_named else logy)
        ax.grid(True, alpha=0.3)
    if rows:
        _mark_doses(every[-1], rows, run_labels, colours if len(runs) > 1 else None)

    every[-1].set_xlabel(_time_label(runs))
    _add_legends(axes, runs)
    if title is None and len(runs) == 1:
        title = runs[0].name
    if title:
        fig.suptitle(title)
    return fig


def plot_timeseries(
    run: RunData | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    series: Sequence[str] | None = None,
    logy: bool | None = None,
    mark_doses: bool = True,
    title: str | None = None,
    dpi: int = 150,
) -> Path:
    """Plot one run's time series to a PNG, SVG or PDF (format from the suffix).

    Args:
        run: A loaded run, or the path of its HDF5 file or output folder.
        out: Figure to write (folders are created).
        series: Series names (default: tumour burden, immune cells in tumour, plasma and
            tissue drug, whichever the run has).
        logy: Log y axis; None decides per panel.
        mark_doses: Mark dose times from the run file.
        title: Figure title (default: the run's name).
        dpi: Resolution of a PNG.

    Returns:
        The figure written.

    Raises:
        RunFileError: Missing file, no time series, or an unknown series.
        VizError: An unsupported suffix.
    """
    data = run if isinstance(run, RunData) else load_run(run)
    return _save(
        timeseries_figure([data], series, logy=logy, mark_doses=mark_doses, title=title), out, dpi
    )


def compare_runs(
    runs: Sequence[RunData | str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    series: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    logy: bool | None = None,
    mark_doses: bool = True,
    title: str | None = None,
    dpi: int = 150,
) -> Path:
    """Overlay the time series of several runs, with a legend naming each run.

    Args:
        runs: Loaded runs, or paths of their HDF5 files or output folders.
        out: Figure to write; PNG, SVG or PDF by suffix.
        series: Series names (default: the default series of every run, in first-seen order).
        labels: Legend label per run (default: each run's ``name`` attribute, made unique).
        logy: Log y axis; None decides per panel.
        mark_doses: Mark every run's dose times (one colour per agent).
        title: Figure title (default: none).
        dpi: Resolution of a PNG.

    Returns:
        The figure written.

    Raises:
        RunFileError: A missing file, no time series, or a series no run has.
        VizError: An unsupported suffix, or ``labels`` of the wrong length.
    """
    data = [run if isinstance(run, RunData) else load_run(run) for run in runs]
    fig = timeseries_figure(data, series, labels, logy=logy, mark_doses=mark_doses, title=title)
    return _save(fig, out, dpi)


def _save(fig: Figure, out: str | os.PathLike[str], dpi: int) -> Path:
    out = Path(out)
    if out.suffix.lower() not in FIGURE_SUFFIXES:
        raise VizError(f"figure must end in {', '.join(FIGURE_SUFFIXES)}, not {out.name!r}")
    with replaced(out) as temporary:  # never written through a link planted at `out`
        fig.savefig(temporary, dpi=dpi, format=out.suffix.lower().lstrip("."))
    log.info("wrote %s", out)
    return out


def _choose_series(runs: Sequence[RunData], series: Sequence[str] | None) -> list[str]:
    """The series to draw: as asked (each must be in some run), else every run's defaults."""
    if series is None:
        names: list[str] = []
        for run in runs:
            names += [n for n in default_series(run) if n not in names]
        return names
    names = list(dict.fromkeys(series))
    if not names:
        raise RunFileError("no time series asked for")
    known = {n for run in runs for n in run.series}
    missing = [n for n in names if n not in known]
    if missing:
        present = ", ".join(sorted(known)) or "none"
        raise RunFileError(
            f"unknown time series {', '.join(map(repr, missing))}: series are {present}"
        )
    return names


def _run_labels(runs: Sequence[RunData], labels: Sequence[str] | None) -> list[str]:
    """Legend labels: given, or run names with a folder or a number added where they clash."""
    if labels is not None:
        if len(labels) != len(runs):
            raise VizError(f"{len(labels)} labels for {len(runs)} runs")
        return [str(label) for label in labels]
    result = [run.name for run in runs]
    for name in {n for n in result if result.count(n) > 1}:
        clashing = [i for i, n in enumerate(result) if n == name]
        folders = [runs[i].path.resolve().parent.name for i in clashing]
        unique_folders = len(set(folders)) == len(folders)
        for k, i in enumerate(clashing):
            result[i] = f"{name} ({folders[k]})" if unique_folders else f"{name} #{k + 1}"
    return result


def _first_with(runs: Sequence[RunData], name: str) -> RunData:
    return next(run for run in runs if name in run.series)


def _set_yscale(ax: object, values: list[np.ndarray], logy: bool | None) -> None:
    """Log scale when asked, or (``logy`` None) when positive data span > 3 decades."""
    data = (
        np.concatenate([np.asarray(v, dtype=float).ravel() for v in values])
        if values
        else np.zeros(0)
    )
    finite = data[np.isfinite(data)]
    positive = finite[finite > 0]
    if logy is None:
        logy = (
            positive.size == finite.size
            and positive.size > 0
            and np.log10(positive.max() / positive.min()) > _LOG_DECADES
        )
    if logy:
        if positive.size == 0:
            log.warning("no positive values for a log axis; keeping it linear")
            return
        ax.set_yscale("log")  # type: ignore[attr-defined]


def _dose_rows(runs: Sequence[RunData], labels: Sequence[str]) -> list[tuple[str, int, str, list[float]]]:
    """(row label, run number, agent, dose times) per agent of each run, in the plotted range;
    a row is labelled by its agent, and its run when comparing."""
    t_min = min(float(run.series_time.min()) for run in runs if run.series_time.size)
    t_max = max(float(run.series_time.max()) for run in runs if run.series_time.size)
    rows = []
    for k, (run, label) in enumerate(zip(runs, labels)):
        for agent in sorted(run.dose_times):
            times = sorted(t for t in run.dose_times[agent] if t_min <= t <= t_max)
            if times:
                rows.append((f"{agent} ({label})" if len(runs) > 1 else agent, k, agent, times))
    return rows


def _mark_doses(
    ax: object, rows: list[tuple[str, int, str, list[float]]], labels: Sequence[str], run_colours: list[str] | None
) -> None:
    """One row of markers per agent (per run and agent when comparing): doses at the same
    time in different rows never cover each other. Colour: each run's own when comparing,
    else one per agent."""
    agents = sorted({agent for _, _, agent, _ in rows})
    for y, (label, k, agent, times) in enumerate(rows):
        colour = run_colours[k] if run_colours else f"C{(7 + agents.index(agent)) % 10}"
        ax.plot(  # type: ignore[attr-defined]
            times, [y] * len(times), ls="none", marker="v", ms=7, color=colour,
            gid=f"dose:{agent}:{labels[k]}", label=label,
        )
    ax.set_yticks(range(len(rows)), [label for label, *_ in rows], fontsize="small")  # type: ignore[attr-defined]
    ax.set_ylim(-0.6, len(rows) - 0.4)  # type: ignore[attr-defined]
    ax.set_ylabel("doses")  # type: ignore[attr-defined]
    ax.grid(True, axis="x", alpha=0.3)  # type: ignore[attr-defined]


def _add_legends(axes: Sequence[object], runs: Sequence[RunData]) -> None:
    """The runs in one legend on the top panel, when there are several (dose rows are named
    on their own axis)."""
    if len(runs) > 1:
        axes[0].legend(loc="best", fontsize="small", framealpha=0.8)  # type: ignore[attr-defined]


def _time_label(runs: Sequence[RunData]) -> str:
    units = {run.time_unit for run in runs}
    if len(units) > 1:
        log.warning("runs use different time units %s; the axis shows the first", sorted(units))
    unit = display_unit(runs[0].time_unit)
    return f"time [{unit}]" if unit else "time"
