"""Time-series figures of one run or several, with matplotlib (no GUI backend needed).

Public API:
    plot_timeseries(run, out, series=None, logy=None, mark_doses=True, title=None) -> Path
    compare_runs(runs, out, series=None, labels=None, logy=None, mark_doses=True) -> Path
    timeseries_figure(runs, series=None, labels=None, ...) -> matplotlib.figure.Figure
    default_series(run) -> list[str]

One panel per series (they differ by orders of magnitude), stacked over a shared time axis;
one line per run in each panel. Dose times from the run file's ``dose_times_json`` are
marked as dashed vertical lines, one colour per agent. Lines carry a matplotlib ``gid``
(``series:<name>:<run label>`` and ``dose:<agent>``), which an SVG keeps as element ids.

Figures are made with ``matplotlib.figure.Figure`` directly, never through pyplot, so no
window, display or global backend is involved; the output format follows the suffix.
"""

from __future__ import annotations

import fnmatch
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

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

__all__ = ["compare_runs", "default_series", "plot_timeseries", "timeseries_figure"]

#: Series drawn when none are asked for, as name patterns in order: tumour burden, immune
#: cells in the tumour, plasma drug levels, tissue drug levels.
DEFAULT_SERIES_PATTERNS: tuple[str, ...] = (
    "tumour_burden",
    "tumor_burden",
    "immune*",
    "*_in_tumour",
    "*_in_tumor",
    "plasma_*",
    "tissue_*",
)
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
_LOG_DECADES = 3.0
_PANEL_HEIGHT_IN = 2.0
_FIGURE_WIDTH_IN = 7.5


def default_series(run: RunData) -> list[str]:
    """The series to draw when none are named: those matching DEFAULT_SERIES_PATTERNS, in that
    order; every series of the run when none match."""
    chosen: list[str] = []
    for pattern in DEFAULT_SERIES_PATTERNS:
        for name in run.series:
            if fnmatch.fnmatchcase(name, pattern) and name not in chosen:
                chosen.append(name)
    return chosen or list(run.series)


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
        logy: Log scale for the y axis; None picks it per panel when the positive values
            span more than three decades.
        mark_doses: Draw dose times as dashed vertical lines, one colour per agent.
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

    fig = Figure(
        figsize=(_FIGURE_WIDTH_IN, 1.0 + _PANEL_HEIGHT_IN * len(names)), layout="constrained"
    )
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    colours = [f"C{i % 10}" for i in range(len(runs))]
    for ax, name in zip(axes, names):
        for run, label, colour in zip(runs, run_labels, colours):
            if name not in run.series:
                log.warning("%s has no series %r; left out of that panel", run.name, name)
                continue
            (line,) = ax.plot(run.series_time, run.series[name], color=colour, lw=1.5, label=label)
            line.set_gid(f"series:{name}:{label}")
        ax.set_ylabel(_first_with(runs, name).series_label(name))
        _set_yscale(ax, [run.series[name] for run in runs if name in run.series], logy)
        ax.grid(True, alpha=0.3)
    if mark_doses:
        _mark_doses(axes, runs)

    axes[-1].set_xlabel(_time_label(runs))
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


def _mark_doses(axes: Sequence[object], runs: Sequence[RunData]) -> None:
    """Dashed vertical lines at every dose time inside the plotted time range, per agent."""
    schedule: dict[str, set[float]] = {}
    for run in runs:
        for agent, times in run.dose_times.items():
            schedule.setdefault(agent, set()).update(times)
    if not schedule:
        return
    t_min = min(float(run.series_time.min()) for run in runs if run.series_time.size)
    t_max = max(float(run.series_time.max()) for run in runs if run.series_time.size)
    styles = ("--", ":", "-.")
    for k, agent in enumerate(sorted(schedule)):
        times = sorted(t for t in schedule[agent] if t_min <= t <= t_max)
        colour = f"C{(7 + k) % 10}"
        for ax in axes:
            for j, t in enumerate(times):
                ax.axvline(  # type: ignore[attr-defined]
                    t,
                    color=colour,
                    ls=styles[k % len(styles)],
                    lw=0.9,
                    alpha=0.8,
                    label=f"{agent} dose" if j == 0 else None,
                    gid=f"dose:{agent}",
                )


def _add_legends(axes: Sequence[object], runs: Sequence[RunData]) -> None:
    """Runs and dose agents in one legend on the top panel (runs only when several)."""
    top = axes[0]
    handles, labels = top.get_legend_handles_labels()  # type: ignore[attr-defined]
    keep = [
        (h, lab)
        for h, lab in zip(handles, labels)
        if len(runs) > 1 or str(h.get_gid() or "").startswith("dose:")
    ]
    if keep:
        top.legend(*zip(*keep), loc="best", fontsize="small", framealpha=0.8)  # type: ignore[attr-defined]


def _time_label(runs: Sequence[RunData]) -> str:
    units = {run.time_unit for run in runs}
    if len(units) > 1:
        log.warning("runs use different time units %s; the axis shows the first", sorted(units))
    unit = display_unit(runs[0].time_unit)
    return f"time [{unit}]" if unit else "time"
