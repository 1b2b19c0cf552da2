"""Pictures of a run: 3D scenes with PyVista, time-series plots with matplotlib.

Public API (imported lazily: ``import solver.viz`` needs neither PyVista nor matplotlib):

Run files (read by ``solver.io.run_file``; NumPy and h5py only):
    load_run(path) -> RunData                     metadata, time series; snapshots on demand
    RunData.field(name, index) -> ndarray         one snapshot (nx, ny, nz), or a static map
    RunData.time_index(time) -> int               "last" | "first" | a time (nearest snapshot)
    RunData.series_time, RunData.series           time series as arrays, by name
    to_image_data(run, time, fields) -> pyvista.ImageData   point data at cell centres
                                                  (``solver.viz.image_data``)

What to show (``solver.viz.pictures``; NumPy only): the config's ``output.pictures``, else
defaults by model and grid:
    picture_plan(run, fields=None, log=(), clim=None) -> PicturePlan

The state of a run (``solver.viz.final_state``; matplotlib, and PyVista for a 3-D scene):
    view(run, field=, time=, screenshot=, log_scale=, clim=, ...) -> Path | None
                                                  3D window, or the PNG when headless
    screenshot(run, out, field=, time=, log_scale=, clim=, ...) -> Path
                                                  profiles (1-D), heat maps (2-D), or the 3D
                                                  scene with slices of each field (3-D)
    final_state_figure(run, index, plan) -> matplotlib.figure.Figure

3D scenes (``solver.viz.scene``; PyVista, off-screen through EGL or OSMesa without X):
    animate(run, out, field=, fps=, ...) -> Path                .gif or .mp4 over all snapshots
    build_scene(run, index, options, plotter=None) -> pyvista.Plotter
    tumour_isosurface(grid, tumour_field, iso_value) -> pyvista.PolyData
    configure_rendering(off_screen=None) -> str                 "display" | "egl" | "osmesa" | "vtk"

Time-series plots (``solver.viz.plots``; matplotlib, no GUI backend needed):
    plot_timeseries(run, out, series=None, ...) -> Path          PNG, SVG or PDF by suffix
    compare_runs(runs, out, series=None, labels=None, ...) -> Path
    timeseries_figure(runs, series=None, ...) -> matplotlib.figure.Figure
    default_series(run) -> list[str]

Errors, all ``solver.errors.TumorsimError`` with one-line messages: ``RunFileError``
(missing or malformed file, unknown field or series, time out of range), ``VizError``
(unknown output format, bad size or frame rate) and ``MissingDependencyError`` (PyVista,
matplotlib or imageio not installed).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from solver.errors import MissingDependencyError, RunFileError, VizError

__all__ = [
    "MissingDependencyError",
    "RunData",
    "RunFileError",
    "VizError",
    "animate",
    "build_scene",
    "compare_runs",
    "configure_rendering",
    "default_series",
    "final_state_figure",
    "import_optional",
    "load_run",
    "picture_plan",
    "plot_timeseries",
    "screenshot",
    "timeseries_figure",
    "to_image_data",
    "tumour_isosurface",
    "view",
]

_LAZY = {
    "RunData": "solver.io.run_file",
    "RunFileError": "solver.io.run_file",
    "load_run": "solver.io.run_file",
    "to_image_data": "solver.viz.image_data",
    "animate": "solver.viz.scene",
    "build_scene": "solver.viz.scene",
    "configure_rendering": "solver.viz.scene",
    "screenshot": "solver.viz.final_state",
    "final_state_figure": "solver.viz.final_state",
    "picture_plan": "solver.viz.pictures",
    "tumour_isosurface": "solver.viz.scene",
    "view": "solver.viz.final_state",
    "compare_runs": "solver.viz.plots",
    "default_series": "solver.viz.plots",
    "plot_timeseries": "solver.viz.plots",
    "timeseries_figure": "solver.viz.plots",
}

_INSTALL_HINT = {
    "pyvista": 'pip install "tumorsim[viz]"',
    "vtk": 'pip install "tumorsim[viz]"',
    "matplotlib": 'pip install "tumorsim[viz]"',
    "imageio": "pip install imageio imageio-ffmpeg",
    "imageio_ffmpeg": "pip install imageio-ffmpeg",
}


def import_optional(module: str, purpose: str = "pictures") -> ModuleType:
    """Import an optional dependency, or raise a one-line error that says how to install it.

    Args:
        module: Importable name, e.g. ``"pyvista"``.
        purpose: What it is needed for, quoted in the message.

    Raises:
        MissingDependencyError: The module cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        hint = _INSTALL_HINT.get(top, f"pip install {top}")
        raise MissingDependencyError(f"{purpose} need {top!r} ({exc}); install it: {hint}") from exc


def __getattr__(name: str) -> Any:
    """Load the public names of the viz submodules on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'solver.viz' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
