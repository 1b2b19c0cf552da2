"""3D scene of a run snapshot with PyVista: tumour boundary, slices, vessels, axes in length units.

Public API:
    view(run, field=None, time="last", screenshot=None, ...) -> Path | None
    screenshot(run, out, field=None, time="last", ...) -> Path
    animate(run, out, field=None, fps=4, ...) -> Path
    build_scene(run, index, options, plotter=None) -> pyvista.Plotter
    render_image(run, index, options) -> ndarray       the scene as an RGB array
    tumour_isosurface(grid, tumour_field, iso_value) -> pyvista.PolyData
    SceneOptions                       what the scene shows (field, tumour field, iso value, ...)
    configure_rendering(off_screen=None) -> str

What one frame shows:
    * the tumour boundary: the isosurface ``tumour_field = iso_value`` (default: half way
      from the tumour field's minimum to its maximum, so it lies inside the field's range),
      coloured by the chosen field;
    * three orthogonal slices of the chosen field through the tumour's centre, sharing one
      colour map and a scalar bar titled with the field's name (and its unit when the run
      file records one);
    * the vessel map ``w`` (when present) as a translucent red isosurface half way up its
      range, named in a legend with the boundary's level;
    * the domain outline with labelled axes in the file's length unit, the run name and the
      snapshot time.

Rendering without a display: VTK 9.4+ (the PyPI ``vtk`` wheel) picks its OpenGL window at run
time: X, else EGL, else OSMesa. With no X server, ``configure_rendering`` turns PyVista's
off-screen mode on and, unless ``VTK_DEFAULT_OPENGL_WINDOW`` is already set, names EGL (Mesa's
llvmpipe software rasteriser: Debian ``libegl1 libegl-mesa0 libgl1-mesa-dri``) or, failing
that, OSMesa (Debian ``libosmesa6``), so VTK does not first try and warn about a missing X
server. Both need only those system libraries; the ``vtk`` wheel loads them with dlopen.
"""

from __future__ import annotations

import ctypes.util
import glob
import logging
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from solver.io.run_file import RunData, RunFileError, TimeSpec, load_run
from solver.io.safe_files import replaced
from solver.viz import VizError, import_optional
from solver.viz.image_data import to_image_data
from solver.viz.pictures import iso_level

if TYPE_CHECKING:
    import pyvista

log = logging.getLogger(__name__)

__all__ = [
    "SceneOptions",
    "animate",
    "build_scene",
    "configure_rendering",
    "render_image",
    "screenshot",
    "tumour_isosurface",
    "view",
]

DEFAULT_WINDOW_SIZE = (1024, 768)
MOVIE_SUFFIXES = (".gif", ".mp4")
_TEXT_COLOUR = "black"
_VESSEL_COLOUR = "crimson"
_BOUNDARY_OPACITY = 0.45
_VESSEL_OPACITY = 0.25
_EGL_VENDOR_DIRS = ("/usr/share/glvnd/egl_vendor.d", "/etc/glvnd/egl_vendor.d")


@dataclass(frozen=True)
class SceneOptions:
    """What a scene shows.

    Attributes:
        field: Field colouring the slices and the tumour boundary (default: the tumour field).
        tumour_field: Field whose level set is the tumour boundary (default: ``T``, else the
            first species).
        iso_value: Level of the boundary, in the tumour field's units (default:
            ``iso_fraction`` of the way from the field's minimum to its maximum).
        iso_fraction: Fraction of the range used when ``iso_value`` is not given.
        clim: Colour range of ``field`` (default: its range over the snapshot shown).
        log_scale: Logarithmic colour scale (its lower end the smallest positive value).
        cmap: Matplotlib colour map name.
        show_slices: Draw three orthogonal slices of ``field``.
        show_boundary: Draw the tumour boundary.
        show_vessels: Draw the vessel map when the run has one.
        vessel_map: Name of the vessel map under ``/maps``.
        window_size: Picture size in pixels (width, height).
    """

    field: str | None = None
    tumour_field: str | None = None
    iso_value: float | None = None
    iso_fraction: float = 0.5
    clim: tuple[float, float] | None = None
    log_scale: bool = False
    cmap: str = "viridis"
    show_slices: bool = True
    show_boundary: bool = True
    show_vessels: bool = True
    vessel_map: str = "w"
    window_size: tuple[int, int] = DEFAULT_WINDOW_SIZE

    def resolved(self, run: RunData) -> SceneOptions:
        """These options with the tumour field and colour field named and checked against ``run``.

        Raises:
            RunFileError: A named field is not in the run; the message lists the fields.
            VizError: Iso fraction outside (0, 1) or a window under 16x16 pixels.
        """
        tumour = run.check_field(self.tumour_field) if self.tumour_field else run.tumour_field
        colour = run.check_field(self.field) if self.field else tumour
        if not 0.0 < self.iso_fraction < 1.0:
            raise VizError(f"iso fraction must lie in (0, 1), not {self.iso_fraction}")
        width, height = self.window_size
        if width < 16 or height < 16:
            raise VizError(f"window size {width}x{height} is too small (16x16 at least)")
        return replace(self, field=colour, tumour_field=tumour)


def configure_rendering(off_screen: bool | None = None) -> str:
    """Choose on-screen or off-screen rendering, and VTK's OpenGL window when off-screen.

    Args:
        off_screen: Force off-screen (True) or a window (False); None decides from whether
            a display is present.

    Returns:
        ``"display"`` for a window, else the off-screen path: ``"egl"``, ``"osmesa"``, or
        ``"vtk"`` when VTK_DEFAULT_OPENGL_WINDOW was set by the user or neither library was
        found (VTK then tries its own order and says why it fails).
    """
    pyvista = import_optional("pyvista", "3D pictures")
    if off_screen is None:
        off_screen = bool(pyvista.OFF_SCREEN) or not has_display()
    if not off_screen:
        return "display"
    if not has_display():
        pyvista.OFF_SCREEN = True  # a fact about this process: no window can ever open
    if sys.platform != "linux" or os.environ.get("VTK_DEFAULT_OPENGL_WINDOW"):
        return "vtk"
    if not has_display():
        if _egl_available():
            os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = "vtkEGLRenderWindow"
            log.debug("no display: rendering off-screen through EGL")
            return "egl"
        if ctypes.util.find_library("OSMesa"):
            os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = "vtkOSOpenGLRenderWindow"
            log.debug("no display: rendering off-screen through OSMesa")
            return "osmesa"
        log.warning(
            "no display and neither EGL nor OSMesa found; install Debian libegl1 libegl-mesa0 "
            "libgl1-mesa-dri (or libosmesa6)"
        )
    return "vtk"


def has_display() -> bool:
    """Whether a window can be opened: always off Linux, else when DISPLAY or WAYLAND_DISPLAY is set."""
    if sys.platform != "linux":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _egl_available() -> bool:
    """libEGL is installed and some EGL vendor (Mesa, NVIDIA) is registered with glvnd."""
    if not ctypes.util.find_library("EGL"):
        return False
    vendors = [f for d in _EGL_VENDOR_DIRS for f in glob.glob(os.path.join(d, "*.json"))]
    return bool(vendors) or bool(ctypes.util.find_library("EGL_mesa"))


def tumour_isosurface(
    grid: pyvista.ImageData, tumour_field: str, iso_value: float
) -> pyvista.PolyData:
    """The surface where ``tumour_field`` equals ``iso_value``, other point arrays interpolated.

    Uses vtkContourFilter (linear interpolation along grid edges), which carries every point
    array of ``grid`` onto the surface so it can be coloured by another field.
    """
    return grid.contour([float(iso_value)], scalars=tumour_field, method="contour")


def tumour_centre(
    values: np.ndarray, spacing: tuple[float, float, float], iso_value: float
) -> tuple[float, float, float]:
    """Centre (in length units) of the cells where ``values`` (nx, ny, nz) reach ``iso_value``.

    The centre of the domain when no cell does.
    """
    inside = np.argwhere(values >= iso_value)
    if inside.size == 0:
        centre = np.asarray(values.shape) * np.asarray(spacing) / 2
    else:
        centre = (inside.mean(axis=0) + 0.5) * np.asarray(spacing)
    return (float(centre[0]), float(centre[1]), float(centre[2]))


def default_iso_value(run: RunData, tumour_field: str, index: int | None, fraction: float) -> float:
    """``fraction`` of the way up the tumour field's range over snapshot ``index`` (all
    snapshots if None): inside the range, so a field above zero everywhere (a 2-D model's
    tissue) still has a boundary."""
    if index is None:
        return iso_level(np.asarray(run.field_range(tumour_field)), fraction)
    return iso_level(run.field(tumour_field, index), fraction)


def build_scene(
    run: RunData,
    index: int,
    options: SceneOptions | None = None,
    plotter: pyvista.Plotter | None = None,
    *,
    reset_camera: bool = True,
) -> pyvista.Plotter:
    """Draw snapshot ``index`` of ``run`` into ``plotter`` (a new off-screen one if None).

    Every actor is named, so calling this again on the same plotter with another index
    replaces the previous snapshot's actors (that is how ``animate`` draws its frames).

    Args:
        run: The loaded run.
        index: Snapshot index.
        options: What to show; unresolved fields are resolved against ``run``.
        plotter: Where to draw.
        reset_camera: Place an isometric camera around the domain.

    Returns:
        The plotter, ready for ``show()`` or ``screenshot()``.
    """
    pyvista = import_optional("pyvista", "3D pictures")
    opts = (options or SceneOptions()).resolved(run)
    assert opts.field is not None and opts.tumour_field is not None
    if plotter is None:
        configure_rendering(off_screen=True)
        plotter = pyvista.Plotter(off_screen=True, window_size=list(opts.window_size))
    plotter.set_background("white")

    wanted = {opts.field, opts.tumour_field}
    vessels = opts.vessel_map if opts.show_vessels and opts.vessel_map in run.map_names else None
    grid = to_image_data(
        run, fields=[f for f in wanted if f in run.species], include_maps=False, index=index
    )
    for name in wanted | ({vessels} if vessels else set()):
        if name in run.map_names and name not in grid.point_data:
            grid.point_data[name] = run.map(name).ravel(order="F")

    tumour = np.asarray(grid.point_data[opts.tumour_field]).reshape(run.grid_shape, order="F")
    iso = opts.iso_value if opts.iso_value is not None else iso_level(tumour, opts.iso_fraction)
    clim = opts.clim or _colour_range(grid.point_data[opts.field], opts.log_scale)
    bar = {
        "title": run.field_label(opts.field),
        "color": _TEXT_COLOUR,
        "vertical": True,
        "fmt": "%.3g",
        "position_x": 0.86,
        "position_y": 0.15,
        "height": 0.7,
        "width": 0.06,
    }
    colour = {"scalars": opts.field, "cmap": opts.cmap, "clim": clim, "log_scale": opts.log_scale}

    _drop(plotter, "slices", "boundary", "vessels")
    if opts.show_slices:
        centre = tumour_centre(tumour, run.spacing, iso)
        slices = grid.slice_orthogonal(x=centre[0], y=centre[1], z=centre[2])
        plotter.add_mesh(slices, name="slices", scalar_bar_args=bar, reset_camera=False, **colour)
    if opts.show_boundary:
        surface = tumour_isosurface(grid, opts.tumour_field, iso)
        if surface.n_points:
            plotter.add_mesh(
                surface,
                name="boundary",
                smooth_shading=True,
                opacity=_BOUNDARY_OPACITY,
                specular=0.4,
                show_scalar_bar=not opts.show_slices,
                scalar_bar_args=bar,
                reset_camera=False,
                **colour,
            )
        else:
            log.info(
                "snapshot %d: no tumour boundary (%s never reaches %g)",
                index,
                opts.tumour_field,
                iso,
            )
    legend = [[f"tumour boundary: {opts.tumour_field} = {iso:.3g}", "grey"]]
    if vessels and _add_vessels(plotter, grid, vessels):
        legend.append([f"vessels: {vessels} half way up its range", _VESSEL_COLOUR])

    bounds = run.domain_bounds
    plotter.add_mesh(
        pyvista.Box(bounds=bounds).outline(), color=_TEXT_COLOUR, name="outline", reset_camera=False
    )
    plotter.add_text(
        f"{run.name}    {run.time_label(index)}",
        position="upper_left",
        font_size=12,
        color=_TEXT_COLOUR,
        name="title",
    )
    plotter.add_legend(legend, bcolor="white", border=True, loc="lower left", size=(0.42, 0.06 * len(legend)),
                       face="rectangle", name="legend")
    if reset_camera:
        unit = run.length_unit  # raw: VTK's axis titles cannot draw "µ"
        plotter.show_bounds(
            bounds=bounds,
            xtitle=f"x [{unit}]" if unit else "x",
            ytitle=f"y [{unit}]" if unit else "y",
            ztitle=f"z [{unit}]" if unit else "z",
            color=_TEXT_COLOUR,
            location="outer",
            ticks="outside",
            font_size=10,
        )
        plotter.view_isometric()
        plotter.reset_camera(bounds=bounds)
    return plotter


def _add_vessels(plotter: Any, grid: Any, name: str) -> bool:
    """The vessel map as a translucent surface half way up its range, if it varies at all."""
    values = np.asarray(grid.point_data[name])
    low, high = _finite_range(values)
    if not high > low:
        log.info("vessel map %s is uniform (%g); not drawn", name, high)
        return False
    surface = grid.contour([low + 0.5 * (high - low)], scalars=name, method="contour")
    if surface.n_points:
        plotter.add_mesh(
            surface,
            name="vessels",
            color=_VESSEL_COLOUR,
            opacity=_VESSEL_OPACITY,
            smooth_shading=True,
            reset_camera=False,
        )
    return bool(surface.n_points)


def _drop(plotter: Any, *names: str) -> None:
    """Remove named actors left by a previous frame (a frame may lack a boundary)."""
    for name in names:
        if name in plotter.actors:
            plotter.remove_actor(name, reset_camera=False, render=False)


def _colour_range(values: np.ndarray, log_scale: bool) -> tuple[float, float]:
    """The finite range, from the smallest positive value on a log scale."""
    low, high = _finite_range(values)
    if log_scale:
        finite = np.asarray(values)[np.isfinite(values)]
        positive = finite[finite > 0]
        if positive.size == 0:
            raise VizError("a log colour scale needs positive values; this field has none")
        low = float(positive.min())
        high = max(high, low * (1 + 1e-6))
    return (low, high)


def _finite_range(values: np.ndarray) -> tuple[float, float]:
    """(min, max) of the finite values, widened when flat so a colour map can be drawn."""
    finite = np.asarray(values)[np.isfinite(values)]
    if finite.size == 0:
        return (0.0, 1.0)
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        pad = abs(low) * 1e-6 or 1e-12
        return (low - pad, high + pad)
    return (low, high)


def _load_with_options(
    run: RunData | str | os.PathLike[str],
    field: str | None,
    tumour_field: str | None,
    iso_value: float | None,
    window_size: tuple[int, int],
    show_vessels: bool,
    log_scale: bool = False,
    clim: tuple[float, float] | None = None,
) -> tuple[RunData, SceneOptions]:
    """The run (loaded if a path) and the scene options resolved against it."""
    data = run if isinstance(run, RunData) else load_run(run)
    if clim is not None and not clim[0] < clim[1]:
        raise VizError(f"colour limits must be LO < HI, got {clim[0]:g} {clim[1]:g}")
    opts = SceneOptions(
        field=field,
        tumour_field=tumour_field,
        iso_value=iso_value,
        window_size=tuple(window_size),  # type: ignore[arg-type]
        show_vessels=show_vessels,
        log_scale=log_scale,
        clim=None if clim is None else (float(clim[0]), float(clim[1])),
    ).resolved(data)
    return data, opts


def screenshot(
    run: RunData | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    field: str | None = None,
    time: TimeSpec = "last",
    window_size: tuple[int, int] = DEFAULT_WINDOW_SIZE,
    tumour_field: str | None = None,
    iso_value: float | None = None,
    show_vessels: bool = True,
    log_scale: bool = False,
    clim: tuple[float, float] | None = None,
) -> Path:
    """Render one snapshot off-screen to a PNG of exactly ``window_size`` pixels.

    Args:
        run: A loaded run, or the path of its HDF5 file or output folder.
        out: PNG to write (folders are created).
        field: Field colouring slices and boundary (default: the tumour field).
        time: ``"last"``, ``"first"`` or a time (nearest snapshot).
        window_size: (width, height) in pixels.
        tumour_field: Field whose level set is the boundary (default ``T`` or the first species).
        iso_value: Boundary level (default: half the tumour field's maximum in this snapshot).
        show_vessels: Draw the vessel map when present.

    Returns:
        The PNG written.

    Raises:
        RunFileError: Missing file, unknown field, or time out of range.
        MissingDependencyError: PyVista is not installed.
    """
    data, opts = _load_with_options(run, field, tumour_field, iso_value, window_size, show_vessels, log_scale, clim)
    return _render_png(data, opts, data.time_index(time), Path(out))


def render_image(run: RunData, index: int, options: SceneOptions) -> np.ndarray:
    """Snapshot ``index`` drawn off-screen, as an RGB array (height, width, 3)."""
    opts = options.resolved(run)
    plotter = build_scene(run, index, opts)
    try:
        return np.asarray(plotter.screenshot(None, return_img=True, window_size=list(opts.window_size)))
    finally:
        plotter.close()


def _render_png(run: RunData, opts: SceneOptions, index: int, out: Path) -> Path:
    """Draw snapshot ``index`` on a new off-screen plotter and save it as a PNG."""
    plotter = build_scene(run, index, opts)
    try:
        with replaced(out) as temporary:  # never written through a link planted at `out`
            plotter.screenshot(str(temporary), window_size=list(opts.window_size))
    finally:
        plotter.close()
    log.info("wrote %s (snapshot %d, t = %g)", out, index, run.times[index])
    return out


def view(
    run: RunData | str | os.PathLike[str],
    *,
    field: str | None = None,
    time: TimeSpec = "last",
    screenshot: str | os.PathLike[str] | None = None,
    window_size: tuple[int, int] = DEFAULT_WINDOW_SIZE,
    tumour_field: str | None = None,
    iso_value: float | None = None,
    show_vessels: bool = True,
    off_screen: bool | None = None,
    log_scale: bool = False,
    clim: tuple[float, float] | None = None,
) -> Path | None:
    """Show one snapshot in a window, or write it to a PNG when asked or when there is no display.

    Args:
        run: A loaded run, or the path of its HDF5 file or output folder.
        field: Field colouring slices and boundary (default: the tumour field).
        time: ``"last"``, ``"first"`` or a time (nearest snapshot).
        screenshot: PNG to write instead of opening a window.
        window_size: (width, height) in pixels.
        tumour_field: Field whose level set is the boundary.
        iso_value: Boundary level (default: half the tumour field's maximum in this snapshot).
        show_vessels: Draw the vessel map when present.
        off_screen: Force off-screen (True) or a window (False); None: window iff a display.

    Returns:
        The PNG written, or None after an interactive window was closed. With no display and
        no ``screenshot``, the PNG goes next to the run file as ``<stem>_<field>_<index>.png``.
    """
    data, opts = _load_with_options(run, field, tumour_field, iso_value, window_size, show_vessels, log_scale, clim)
    index = data.time_index(time)
    mode = configure_rendering(off_screen=True if screenshot is not None else off_screen)
    if mode != "display":
        out = Path(screenshot) if screenshot is not None else _default_png(data, opts, index)
        if screenshot is None:
            log.warning("no display: writing the scene to %s instead of a window", out)
        return _render_png(data, opts, index, out)
    pyvista = import_optional("pyvista", "3D pictures")
    plotter = pyvista.Plotter(
        off_screen=False, window_size=list(opts.window_size), title=f"tumorsim: {data.name}"
    )
    build_scene(data, index, opts, plotter)
    plotter.show()
    return None


def _default_png(run: RunData, opts: SceneOptions, index: int) -> Path:
    return run.path.with_name(f"{run.path.stem}_{opts.field}_{index:04d}.png")


def animate(
    run: RunData | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    field: str | None = None,
    fps: float = 4.0,
    window_size: tuple[int, int] = DEFAULT_WINDOW_SIZE,
    tumour_field: str | None = None,
    iso_value: float | None = None,
    show_vessels: bool = True,
) -> Path:
    """Render every snapshot off-screen into a movie (.mp4 via imageio-ffmpeg, or .gif).

    The camera, the colour range (the field's range over all snapshots) and the boundary
    level (default: half the tumour field's maximum over all snapshots) stay fixed, so
    frames compare; each frame carries its time stamp.

    Args:
        run: A loaded run, or the path of its HDF5 file or output folder.
        out: Movie to write; the suffix picks the format: ``.mp4`` or ``.gif``.
        field: Field colouring slices and boundary (default: the tumour field).
        fps: Frames (snapshots) per second.
        window_size: (width, height) in pixels; mp4 wants multiples of 16.
        tumour_field: Field whose level set is the boundary.
        iso_value: Boundary level for every frame.
        show_vessels: Draw the vessel map when present.

    Returns:
        The movie written.

    Raises:
        RunFileError: Missing file, unknown field, or no snapshots.
        VizError: Unknown suffix or a non-positive frame rate.
        MissingDependencyError: PyVista, imageio or imageio-ffmpeg (for .mp4) missing.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in MOVIE_SUFFIXES:
        raise VizError(f"movie must end in {' or '.join(MOVIE_SUFFIXES)}, not {out.name!r}")
    if fps <= 0:
        raise VizError(f"fps must be positive, not {fps}")
    data = run if isinstance(run, RunData) else load_run(run)
    if data.n_snapshots == 0:
        raise RunFileError(f"{data.path.name} holds no snapshots to animate")
    opts = SceneOptions(
        field=field,
        tumour_field=tumour_field,
        iso_value=iso_value,
        window_size=tuple(window_size),  # type: ignore[arg-type]
        show_vessels=show_vessels,
    ).resolved(data)
    assert opts.field is not None and opts.tumour_field is not None
    opts = replace(
        opts,
        clim=_finite_range(np.asarray(data.field_range(opts.field))),
        iso_value=iso_value
        if iso_value is not None
        else default_iso_value(data, opts.tumour_field, None, opts.iso_fraction),
    )
    import_optional("imageio", "movies")
    if suffix == ".mp4":
        import_optional("imageio_ffmpeg", "mp4 movies")

    pyvista = import_optional("pyvista", "3D pictures")
    configure_rendering(off_screen=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    plotter = pyvista.Plotter(off_screen=True, window_size=list(opts.window_size))
    try:
        if suffix == ".gif":
            plotter.open_gif(str(out), fps=fps)
        else:
            plotter.open_movie(str(out), framerate=fps, quality=7)
        for index in range(data.n_snapshots):
            build_scene(data, index, opts, plotter, reset_camera=index == 0)
            plotter.write_frame()
            log.debug("frame %d/%d", index + 1, data.n_snapshots)
    finally:
        plotter.close()
    log.info("wrote %s (%d frames of %s)", out, data.n_snapshots, opts.field)
    return out
