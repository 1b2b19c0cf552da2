"""The picture of a run's state that its config asks for: profiles, heat maps or slices of
the chosen fields, with vessels, marked regions and units (matplotlib; PyVista for 3-D).

Public API:
    final_state_figure(run, index, plan, scene_image=None, size=None) -> matplotlib Figure
    screenshot(run, out, field=None, time="last", ...) -> Path      the picture as a PNG
    view(run, field=None, time="last", screenshot=None, ...) -> Path | None

What the figure holds depends on the plan's layout (solver/viz/pictures.py):
    profile      one panel per field: its profile along the grid's long axis at every
                 snapshot, coloured by time (a 1-D grid: two dimensions of at most 4 cells);
    map          one heat map per field of the plane at the middle of the thin dimension,
                 and the radial profile of every field from the tumour centre;
    orthogonal   the 3D scene (solver/viz/scene.py: orthogonal slices through the tumour
                 centre, the tumour isosurface, the vessels), a heat map per field of the
                 slice z = the tumour centre's, and the radial profiles.
Heat maps carry the vessel map as crimson contours, the tumour boundary on the tumour
field's map, marked regions (hypoxic: O < 0.1) as dashed contours, each in the legend.
Artists carry a ``gid`` (``map:<field>``, ``vessels``, ``boundary``, ``level:<label>``,
``radial:<field>``, ``profile:<field>:<snapshot>``), so tests and SVGs can find them.

``screenshot`` and ``view`` with ``field`` on a 3-D run draw the bare 3D scene of that
field (solver/viz/scene.py); otherwise they draw this figure (of that one field, if named).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from solver.io.run_file import RunData, TimeSpec, load_run
from solver.io.safe_files import replaced
from solver.text import display_unit, with_unit
from solver.viz import VizError, import_optional
from solver.viz.pictures import PicturePlan, centre_cell, iso_level, picture_plan

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

__all__ = ["final_state_figure", "screenshot", "view"]

_VESSEL_COLOUR = "crimson"
_LEVEL_STYLES = ("--", ":", "-.")
_PANEL_IN = (4.2, 3.4)
_DPI = 110


def final_state_figure(
    run: RunData,
    index: int,
    plan: PicturePlan,
    *,
    scene_image: np.ndarray | None = None,
    size: tuple[int, int] | None = None,
) -> Figure:
    """The figure of snapshot ``index`` (every snapshot, for profiles) as ``plan`` says.

    Args:
        run: The loaded run.
        index: Snapshot index.
        plan: What to draw (``solver.viz.pictures.picture_plan``).
        scene_image: An RGB image of the 3D scene, shown first (orthogonal layout).
        size: Picture size in pixels (width, height); default: by the number of panels.
    """
    import_optional("matplotlib", "pictures")
    from matplotlib.figure import Figure

    n_panels = len(plan.fields) + (scene_image is not None) + (plan.layout != "profile")
    ncols = min(n_panels, 2 if plan.layout == "profile" else 3)
    nrows = math.ceil(n_panels / ncols)
    figsize = (
        (size[0] / _DPI, size[1] / _DPI) if size else (_PANEL_IN[0] * ncols, _PANEL_IN[1] * nrows + 0.4)
    )
    fig = Figure(figsize=figsize, dpi=_DPI, layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    panels = iter(axes)

    if scene_image is not None:
        ax = next(panels)
        ax.imshow(scene_image, gid="scene")
        ax.set_axis_off()
        ax.set_title(f"3D: {plan.tumour_field} isosurface, slices, vessels", fontsize="medium")
    if plan.layout == "profile":
        _profiles(run, plan, panels)
        fig.suptitle(f"{run.name}: profiles at {run.n_snapshots} snapshots")
        return fig
    plane_axis, where = _plane(run, plan, index)
    for name in plan.fields:
        _heat_map(next(panels), run, plan, name, index, plane_axis, where)
    _radial(next(panels), run, plan, index, plane_axis, where)
    fig.suptitle(f"{run.name}    {run.time_label(index)}")
    return fig


def _plane(run: RunData, plan: PicturePlan, index: int) -> tuple[int, int]:
    """The axis normal to the heat maps and the cell index where they cut it: a 2-D grid's
    thin axis at its middle; otherwise z at the tumour's centre."""
    shape = run.grid_shape
    if plan.layout == "map" and min(shape) == 1:
        axis = int(np.argmin(shape))
        return axis, shape[axis] // 2
    tumour = run.field(plan.tumour_field, index)
    return 2, centre_cell(tumour, iso_level(tumour))[2]


def _cut(values: np.ndarray, axis: int, where: int) -> np.ndarray:
    return np.take(values, where, axis=axis)


def _axis_labels(run: RunData, axes: Iterable[int]) -> list[str]:
    return [with_unit("xyz"[a], run.length_unit) for a in axes]


def _norm(values: np.ndarray, name: str, plan: PicturePlan) -> Any:
    """Linear or log colour scale over the field's range, or its ``clim``."""
    from matplotlib.colors import LogNorm, Normalize

    finite = values[np.isfinite(values)]
    low, high = plan.clim.get(name, (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0))
    if name in plan.log:
        positive = finite[finite > 0]
        if name not in plan.clim and positive.size:
            low = float(positive.min())
        if not (low > 0 and high > low):
            log.warning("%s: no positive range for a log scale; drawn linear", name)
            return Normalize(low, high if high > low else low + 1.0)
        return LogNorm(low, high)
    return Normalize(low, high if high > low else low + abs(low) * 1e-6 + 1e-12)


def _heat_map(
    ax: Axes, run: RunData, plan: PicturePlan, name: str, index: int, plane_axis: int, where: int
) -> None:
    """One field's plane, its colour bar in the field's unit, vessels and marked regions."""
    across = [a for a in range(3) if a != plane_axis]
    (h0, h1), (n0, n1) = [run.spacing[a] for a in across], [run.grid_shape[a] for a in across]
    extent = (0.0, n0 * h0, 0.0, n1 * h1)
    centres = [(np.arange(n) + 0.5) * h for n, h in ((n0, h0), (n1, h1))]
    values = _cut(run.field(name, index), plane_axis, where).astype(float)
    image = ax.imshow(
        values.T, origin="lower", extent=extent, cmap="viridis", norm=_norm(values, name, plan),
        interpolation="nearest", gid=f"map:{name}",
    )
    bar = ax.figure.colorbar(image, ax=ax, shrink=0.9)
    bar.set_label(run.field_label(name) if run.field_units.get(name) else f"{name} [no unit given]")
    labels = _axis_labels(run, across)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    position = (where + 0.5) * run.spacing[plane_axis]
    unit = display_unit(run.length_unit)
    ax.set_title(f"{name} at {'xyz'[plane_axis]} = {position:.4g} {unit}".rstrip(), fontsize="medium")

    handles: list[Any] = []
    from matplotlib.lines import Line2D

    def contour(data: np.ndarray, level: float, gid: str, label: str, **style: Any) -> None:
        finite = data[np.isfinite(data)]
        if finite.size and finite.min() < level < finite.max():
            ax.contour(*centres, data.T, levels=[level], **style).set_gid(gid)
            handles.append(Line2D([], [], label=label, **{k.rstrip("s"): v for k, v in style.items()}))

    if plan.vessel_map:
        w = _cut(run.map(plan.vessel_map), plane_axis, where).astype(float)
        contour(w, iso_level(run.map(plan.vessel_map)), "vessels", f"vessels ({plan.vessel_map} at half its range)",
                colors=_VESSEL_COLOUR, linewidths=1.2)
    if name == plan.tumour_field:
        level = iso_level(run.field(name, index))
        contour(values, level, "boundary", f"tumour boundary ({name} = {level:.3g})", colors="white", linewidths=1.0)
    for k, lv in enumerate(x for x in plan.levels if x.field == name):
        contour(values, lv.value, f"level:{lv.label}", f"{lv.label}: {name} < {lv.value:g}",
                colors="black", linestyles=_LEVEL_STYLES[k % 3], linewidths=1.2)
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize="x-small", framealpha=0.7)


def _radial(ax: Axes, run: RunData, plan: PicturePlan, index: int, plane_axis: int, where: int) -> None:
    """Each field's mean at a distance from the tumour centre, over its largest mean: how far a
    drug or oxygen gets from the vessels into the tumour's core."""
    tumour = run.field(plan.tumour_field, index)
    centre = np.asarray(centre_cell(tumour, iso_level(tumour)), dtype=float)
    coords = np.meshgrid(*[np.arange(n, dtype=float) for n in run.grid_shape], indexing="ij")
    squares = [((c - centre[a]) * run.spacing[a]) ** 2 for a, c in enumerate(coords)]
    if plan.layout == "map":  # distances within the plane the maps show
        squares[plane_axis] = np.zeros(run.grid_shape)
    r = np.sqrt(sum(squares))
    width = max(run.spacing[a] for a in range(3) if run.grid_shape[a] > 1)
    bins = np.floor(r / width).astype(int)
    count = np.bincount(bins.ravel())
    radius = (np.arange(count.size) + 0.5) * width
    filled = count > 0

    def draw(name: str, values: np.ndarray, **style: Any) -> None:
        mean = np.bincount(bins.ravel(), weights=values.ravel().astype(float))[filled] / count[filled]
        top = np.nanmax(np.abs(mean)) if mean.size else 0.0
        ax.plot(radius[filled], mean / top if top > 0 else mean, label=name, gid=f"radial:{name}", **style)

    for name in plan.fields:
        draw(name, run.field(name, index), lw=1.5)
    if plan.vessel_map:
        draw(plan.vessel_map, run.map(plan.vessel_map), color=_VESSEL_COLOUR, ls="--", lw=1.2)
    ax.set_xlabel(f"distance from the tumour centre [{display_unit(run.length_unit)}]".replace(" []", ""))
    ax.set_ylabel("mean over its largest mean [1]")
    ax.set_title("radial profiles (vessels dashed)", fontsize="medium")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small", ncols=2)


def _profiles(run: RunData, plan: PicturePlan, panels: Iterable[Axes]) -> None:
    """One panel per field: its mean over the thin dimensions along the long axis, at every
    snapshot coloured by time, with the vessel cells shaded and marked levels drawn."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    axis = int(np.argmax(run.grid_shape))
    thin = tuple(a for a in range(3) if a != axis)
    x = (np.arange(run.grid_shape[axis]) + 0.5) * run.spacing[axis]
    times = Normalize(float(run.times[0]), float(run.times[-1]) if run.times[-1] > run.times[0] else run.times[0] + 1)
    cmap = colormaps["viridis"]
    for ax, name in zip(panels, plan.fields):
        for k in range(run.n_snapshots if name in run.species else 1):
            profile = run.field(name, k).mean(axis=thin)
            ax.plot(x, profile, color=cmap(times(run.times[k])), lw=1.3, gid=f"profile:{name}:{k}")
        if name in plan.log:
            ax.set_yscale("log")
        if name in plan.clim:
            ax.set_ylim(*plan.clim[name])
        for j, lv in enumerate(v for v in plan.levels if v.field == name):
            ax.axhline(lv.value, color="black", ls=_LEVEL_STYLES[j % 3], lw=1.0, label=f"{lv.label}: {name} < {lv.value:g}",
                       gid=f"level:{lv.label}")
        if plan.vessel_map:
            w = run.map(plan.vessel_map).mean(axis=thin)
            ax.fill_between(x, 0, 1, where=w > iso_level(w), color=_VESSEL_COLOUR, alpha=0.12,
                            transform=ax.get_xaxis_transform(), label=f"vessels ({plan.vessel_map} above half its range)",
                            gid="vessels")
        ax.set_xlabel(_axis_labels(run, [axis])[0])
        ax.set_ylabel(run.field_label(name) if run.field_units.get(name) else f"{name} [no unit given]")
        ax.set_title(f"{name} along {'xyz'[axis]}", fontsize="medium")
        ax.grid(True, alpha=0.3)
        bar = ax.figure.colorbar(ScalarMappable(times, cmap), ax=ax)
        bar.set_label(with_unit("time", run.time_unit))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small")


def _plan_for(run: RunData, field: str | None, log_scale: bool, clim: tuple[float, float] | None) -> PicturePlan:
    """The run's plan, narrowed to ``field`` when one is named; --log and --clim apply to
    that field (default: the tumour field)."""
    target = run.check_field(field) if field else run.tumour_field
    if clim is not None and not clim[0] < clim[1]:
        raise VizError(f"colour limits must be LO < HI, got {clim[0]:g} {clim[1]:g}")
    if clim is not None and log_scale and clim[0] <= 0:
        raise VizError(f"a log colour scale needs LO > 0, got {clim[0]:g}")
    return picture_plan(
        run, [field] if field else None, log=[target] if log_scale else (),
        clim={target: clim} if clim else None,
    )


def screenshot(
    run: RunData | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    field: str | None = None,
    time: TimeSpec = "last",
    window_size: tuple[int, int] | None = None,
    log_scale: bool = False,
    clim: tuple[float, float] | None = None,
    **scene_options: Any,
) -> Path:
    """Write the picture of one snapshot to a PNG.

    Args:
        run: A loaded run, or the path of its HDF5 file or output folder.
        out: PNG to write.
        field: With a 3-D run, the bare 3D scene coloured by this field; otherwise only this
            field's panels. Default: the fields the config (or the model) chooses.
        time: ``"last"``, ``"first"`` or a time (nearest snapshot).
        window_size: (width, height) in pixels (default: by the number of panels; a bare
            scene: scene.DEFAULT_WINDOW_SIZE).
        log_scale: Log colour scale for ``field`` (default: the tumour field).
        clim: Colour limits (LO, HI) of that field.
        scene_options: Passed to the 3D scene (tumour_field, iso_value, show_vessels).

    Raises:
        RunFileError: Missing file, unknown field, or time out of range.
        VizError: Colour limits not LO < HI (or LO <= 0 on a log scale), or a bad size.
    """
    data = run if isinstance(run, RunData) else load_run(run)
    index = data.time_index(time)
    return _write_png(data, Path(out), field, index, _plan_for(data, field, log_scale, clim), window_size, scene_options)


def _write_png(
    data: RunData, out: Path, field: str | None, index: int, plan: PicturePlan,
    window_size: tuple[int, int] | None, scene_options: dict[str, Any],
) -> Path:
    """The bare 3D scene of ``field`` on a 3-D run, else the figure, as a PNG."""
    if field and plan.layout == "orthogonal":
        from solver.viz import scene

        target = plan.fields[0]
        return scene.screenshot(data, out, field=field, time=float(data.times[index]), log_scale=target in plan.log,
                                clim=plan.clim.get(target), **({"window_size": window_size} if window_size else {}),
                                **scene_options)
    image = _scene_image(data, index, plan, scene_options) if plan.layout == "orthogonal" else None
    fig = final_state_figure(data, index, plan, scene_image=image, size=window_size)
    with replaced(out) as temporary:  # never written through a link planted at `out`
        fig.savefig(temporary, dpi=_DPI, format="png")
    log.info("wrote %s (snapshot %d, t = %g)", out, index, data.times[index])
    return out


def _scene_image(run: RunData, index: int, plan: PicturePlan, options: dict[str, Any]) -> np.ndarray | None:
    """The 3D scene of the tumour field as an RGB array; None without PyVista (a note)."""
    from solver.errors import MissingDependencyError
    from solver.viz import scene

    target = plan.tumour_field
    opts = scene.SceneOptions(window_size=(900, 720), log_scale=target in plan.log, clim=plan.clim.get(target),
                              **options)
    try:
        return scene.render_image(run, index, replace(opts, field=target))
    except MissingDependencyError as exc:
        log.warning("no 3D scene in the picture (%s)", exc)
        return None


def view(
    run: RunData | str | os.PathLike[str],
    *,
    field: str | None = None,
    time: TimeSpec = "last",
    screenshot: str | os.PathLike[str] | None = None,
    window_size: tuple[int, int] | None = None,
    log_scale: bool = False,
    clim: tuple[float, float] | None = None,
    off_screen: bool | None = None,
    **scene_options: Any,
) -> Path | None:
    """Show one snapshot: a window with the 3D scene when there is a display (a 3-D run),
    else (or with ``screenshot``) the PNG of ``screenshot()``.

    Returns:
        The PNG written, or None after a window was closed. Headless without ``screenshot``,
        the PNG goes next to the run file as ``<stem>_<field>_<index>.png``.
    """
    from solver.viz import scene

    data = run if isinstance(run, RunData) else load_run(run)
    index = data.time_index(time)
    plan = _plan_for(data, field, log_scale, clim)
    mode = "png" if screenshot is not None else scene.configure_rendering(off_screen=off_screen)
    if mode == "display" and plan.layout == "orthogonal":
        return scene.view(data, field=field, time=float(data.times[index]), window_size=window_size or scene.DEFAULT_WINDOW_SIZE,
                          log_scale=log_scale, clim=clim, off_screen=False, **scene_options)
    if screenshot is None:  # headless, or a picture a 3D window cannot show (profiles, heat maps)
        out = data.path.with_name(f"{data.path.stem}_{field or data.tumour_field}_{index:04d}.png")
        log.warning("writing the picture to %s instead of a window", out)
    else:
        out = Path(screenshot)
    return _write_png(data, out, field, index, plan, window_size, scene_options)
