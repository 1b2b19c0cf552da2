"""Read a run's HDF5 file for plotting: metadata, snapshots, static maps and time series.

Public API:
    load_run(path) -> RunData
    to_image_data(run, time="last", fields=None, include_maps=True) -> pyvista.ImageData
    RunData.field(name, index) / .map(name) / .time_index(time) / .field_range(name)
    display_unit(unit) -> str

The file layout (written by ``solver.io``): root attributes ``name``, ``grid_shape``,
``grid_spacing``, ``length_unit``, ``time_unit`` (and provenance); ``/fields/time`` and
``/fields/<species>`` of shape (snapshots, nx, ny, nz); ``/maps/<name>`` of shape
(nx, ny, nz); ``/timeseries/time`` and ``/timeseries/<name>``; optional ``dose_times_json``.

Snapshots are read one at a time (each is one HDF5 chunk); the file is opened for each
read and closed at once, so a ``RunData`` holds no open handle.

Grid convention: cell (i, j, k) holds the value at its centre ((i+1/2) hx, (j+1/2) hy,
(k+1/2) hz). ``to_image_data`` makes those centres the POINTS of a ``pyvista.ImageData``
(origin (hx/2, hy/2, hz/2), spacing (hx, hy, hz), dimensions (nx, ny, nz)) and stores the
values as point data, so contours and slices interpolate the solver's own samples without
a cell-to-point averaging step. The XDMF sidecar uses the same convention.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from solver.io.xdmf import RunFileError
from solver.viz import import_optional

if TYPE_CHECKING:
    import pyvista

logger = logging.getLogger(__name__)

__all__ = ["RunData", "RunFileError", "display_unit", "load_run", "to_image_data"]

_UNIT_DISPLAY = {
    "um": "\u00b5m",
    "micrometre": "\u00b5m",
    "micrometer": "\u00b5m",
    "micron": "\u00b5m",
}


def display_unit(unit: str) -> str:
    """The unit as it should be printed on an axis (``"um"`` becomes ``"µm"``)."""
    return _UNIT_DISPLAY.get(unit.strip(), unit.strip())


def with_unit(label: str, unit: str) -> str:
    """``"label [unit]"``, or the bare label when the unit is empty."""
    unit = display_unit(unit)
    return f"{label} [{unit}]" if unit else label


TimeSpec = str | float | int | None


@dataclass(frozen=True)
class RunData:
    """What one run file holds, with snapshots and maps read on demand.

    Attributes:
        path: The HDF5 file.
        name: The run's name (root attribute ``name``, else the file's stem).
        species: Field names under ``/fields`` in the file's order, ``time`` excluded.
        times: Snapshot times, one per snapshot.
        grid_shape: Cells along x, y, z.
        spacing: Cell sizes (hx, hy, hz) in ``length_unit``.
        length_unit: Length unit of ``spacing`` (may be empty).
        time_unit: Unit of ``times`` and ``series_time`` (may be empty).
        map_names: Static maps under ``/maps`` (e.g. ``w``, the vessel map).
        series_time: Times of the scalar time series.
        series: Scalar time series by name, each as long as ``series_time``.
        dose_times: Dose times per agent, from ``dose_times_json`` (empty when absent).
        field_units: Units of fields and maps found as a ``units`` attribute on their dataset.
        series_units: Units of time series found the same way.
        attrs: The remaining root attributes (version, backend, device, config_json).
    """

    path: Path
    name: str
    species: tuple[str, ...]
    times: np.ndarray
    grid_shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    length_unit: str
    time_unit: str
    map_names: tuple[str, ...]
    series_time: np.ndarray
    series: Mapping[str, np.ndarray]
    dose_times: Mapping[str, tuple[float, ...]]
    field_units: Mapping[str, str] = field(default_factory=dict)
    series_units: Mapping[str, str] = field(default_factory=dict)
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_snapshots(self) -> int:
        """Number of snapshots in ``/fields``."""
        return int(self.times.size)

    @property
    def tumour_field(self) -> str:
        """The field whose level set is the tumour boundary: ``T`` if present, else the first."""
        if "T" in self.species:
            return "T"
        if not self.species:
            raise RunFileError(f"{self.path} holds no fields under /fields")
        return self.species[0]

    @property
    def domain_bounds(self) -> tuple[float, float, float, float, float, float]:
        """The whole domain (0, nx hx, 0, ny hy, 0, nz hz), in ``length_unit``."""
        (nx, ny, nz), (hx, hy, hz) = self.grid_shape, self.spacing
        return (0.0, nx * hx, 0.0, ny * hy, 0.0, nz * hz)

    def check_field(self, name: str) -> str:
        """Return ``name`` if it is a species or a map of this run.

        Raises:
            RunFileError: Unknown name; the message lists the fields and maps present.
        """
        if name in self.species or name in self.map_names:
            return name
        present = ", ".join(self.species) or "none"
        maps = ", ".join(self.map_names) or "none"
        raise RunFileError(
            f"unknown field {name!r} in {self.path.name}: fields are {present}; maps are {maps}"
        )

    def check_series(self, names: Iterable[str]) -> list[str]:
        """Return ``names`` as a list if each is a time series of this run.

        Raises:
            RunFileError: A name is unknown; the message lists the series present.
        """
        names = list(names)
        missing = [n for n in names if n not in self.series]
        if missing:
            present = ", ".join(self.series) or "none"
            raise RunFileError(
                f"unknown time series {', '.join(map(repr, missing))} in {self.path.name}: "
                f"series are {present}"
            )
        return names

    def time_index(self, time: TimeSpec = "last") -> int:
        """The snapshot index for a requested time.

        Args:
            time: ``"last"`` (or None), ``"first"``, or a time in ``time_unit`` (number or
                numeric string); a time between snapshots picks the nearest one.

        Raises:
            RunFileError: No snapshots, an unparsable time, or one outside the snapshots.
        """
        if self.n_snapshots == 0:
            raise RunFileError(f"{self.path.name} holds no snapshots")
        if time is None or (isinstance(time, str) and time.strip().lower() == "last"):
            return self.n_snapshots - 1
        if isinstance(time, str) and time.strip().lower() == "first":
            return 0
        try:
            value = float(time)
        except (TypeError, ValueError):
            raise RunFileError(f"time must be 'last', 'first' or a number, not {time!r}") from None
        first, last = float(self.times[0]), float(self.times[-1])
        slack = 1e-9 * max(1.0, abs(first), abs(last))
        if not math.isfinite(value) or value < first - slack or value > last + slack:
            unit = f" {self.time_unit}" if self.time_unit else ""
            raise RunFileError(
                f"time {value:g}{unit} is outside the snapshots of {self.path.name} "
                f"({first:g} to {last:g}{unit})"
            )
        index = int(np.argmin(np.abs(self.times - value)))
        if not math.isclose(float(self.times[index]), value, rel_tol=1e-9, abs_tol=slack):
            logger.info(
                "time %g: nearest snapshot is %d at t = %g", value, index, self.times[index]
            )
        return index

    def field(self, name: str, index: int = -1) -> np.ndarray:
        """One snapshot of a species, or a static map, as an (nx, ny, nz) array.

        Args:
            name: A species name or a map name.
            index: Snapshot index (negative counts from the end); ignored for maps.

        Raises:
            RunFileError: Unknown name or index out of range.
        """
        self.check_field(name)
        if name not in self.species:
            return self.map(name)
        n = self.n_snapshots
        if not -n <= index < n:
            raise RunFileError(
                f"snapshot {index} out of range: {self.path.name} holds {n} snapshots"
            )
        with _open(self.path) as fh:
            return np.asarray(fh["fields"][name][index % n])

    def map(self, name: str) -> np.ndarray:
        """A static map under ``/maps`` (e.g. ``w``, the vessel map) as an (nx, ny, nz) array.

        Raises:
            RunFileError: No such map; the message lists the maps present.
        """
        if name not in self.map_names:
            maps = ", ".join(self.map_names) or "none"
            raise RunFileError(f"no map {name!r} in {self.path.name}: maps are {maps}")
        with _open(self.path) as fh:
            return np.asarray(fh["maps"][name][...])

    def field_range(self, name: str) -> tuple[float, float]:
        """(min, max) of a field over every snapshot (of the map, for a map), NaNs ignored."""
        self.check_field(name)
        if name not in self.species:
            data = self.map(name)
            return float(np.nanmin(data)), float(np.nanmax(data))
        low, high = math.inf, -math.inf
        with _open(self.path) as fh:
            ds = fh["fields"][name]
            for i in range(self.n_snapshots):
                snap = ds[i]
                low, high = min(low, float(np.nanmin(snap))), max(high, float(np.nanmax(snap)))
        return low, high

    def time_label(self, index: int) -> str:
        """``"t = 3.5 day"`` for snapshot ``index``."""
        t = float(self.times[index])
        return f"t = {t:.4g} {self.time_unit}".rstrip()

    def series_label(self, name: str) -> str:
        """A time series' name for an axis, with its unit when recorded (``"tumour burden"``)."""
        return with_unit(name.replace("_", " "), self.series_units.get(name, ""))

    def field_label(self, name: str) -> str:
        """The field's name with its unit when the file records one (``"T [cells/µm^3]"``)."""
        return with_unit(name, self.field_units.get(name, ""))


def load_run(path: str | os.PathLike[str]) -> RunData:
    """Read a run file's metadata and time series (snapshots stay on disk until asked for).

    Args:
        path: The run's HDF5 file, or its output folder (``DIR/run.h5``, else the only
            ``*.h5`` in it).

    Raises:
        RunFileError: Missing file, not HDF5, or not in the run-file layout.
    """
    h5_path = resolve_run_path(path)
    with _open(h5_path) as fh:
        attrs = {key: _plain(value) for key, value in fh.attrs.items()}
        fields_group = fh.get("fields")
        if fields_group is None or "time" not in fields_group:
            raise RunFileError(f"{h5_path} has no /fields/time: not a tumorsim run file")
        times = np.asarray(fields_group["time"][...], dtype=np.float64).reshape(-1)
        species = tuple(name for name in fields_group if name != "time")
        shapes = {name: tuple(fields_group[name].shape) for name in species}
        units = {name: _unit_attr(fields_group[name]) for name in species}
        map_names: tuple[str, ...] = ()
        if "maps" in fh:
            map_names = tuple(fh["maps"])
            units.update({name: _unit_attr(fh["maps"][name]) for name in map_names})
        series_time, series = _read_series(fh, h5_path)
        series_units = {name: _unit_attr(fh["timeseries"][name]) for name in series}
    grid_shape = _grid_shape(attrs, h5_path)
    for name, shape in shapes.items():
        _check_field_shape(h5_path, name, shape, grid_shape, times.size)
    run = RunData(
        path=h5_path,
        name=str(attrs.pop("name", "") or h5_path.parent.name or h5_path.stem),
        species=species,
        times=times,
        grid_shape=grid_shape,
        spacing=_grid_spacing(attrs, h5_path),
        length_unit=str(attrs.pop("length_unit", "") or ""),
        time_unit=str(attrs.pop("time_unit", "") or ""),
        map_names=map_names,
        series_time=series_time,
        series=series,
        dose_times=_dose_times(attrs.pop("dose_times_json", None), h5_path),
        field_units={k: v for k, v in units.items() if v},
        series_units={k: v for k, v in series_units.items() if v},
        attrs=attrs,
    )
    logger.debug(
        "loaded %s: %d snapshots of %s, series %s", h5_path, run.n_snapshots, species, list(series)
    )
    return run


def resolve_run_path(path: str | os.PathLike[str]) -> Path:
    """The HDF5 file for a run given as a file or as its output folder."""
    path = Path(path)
    if path.is_dir():
        default = path / "run.h5"
        if default.is_file():
            return default
        candidates = sorted(path.glob("*.h5"))
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise RunFileError(f"no run file (*.h5) in folder {path}")
        names = ", ".join(c.name for c in candidates)
        raise RunFileError(f"several run files in {path} ({names}): name one")
    if not path.is_file():
        raise RunFileError(f"run file not found: {path}")
    return path


def to_image_data(
    run: RunData,
    time: TimeSpec = "last",
    fields: Sequence[str] | None = None,
    include_maps: bool = True,
    *,
    index: int | None = None,
) -> pyvista.ImageData:
    """One snapshot as a ``pyvista.ImageData`` with each field as point data at cell centres.

    Args:
        run: The loaded run.
        time: Which snapshot (see ``RunData.time_index``); ignored when ``index`` is given.
        fields: Species to include (default: all).
        include_maps: Also attach every static map (``w`` ...) as point data.
        index: Snapshot index, overriding ``time``.

    Returns:
        ImageData with dimensions (nx, ny, nz), origin (hx/2, hy/2, hz/2) and spacing
        (hx, hy, hz); ``grid.point_data[name]`` is ``field.ravel(order="F")`` (x fastest,
        as VTK orders points). ``grid.field_data`` carries ``time``, ``length_unit`` and
        ``time_unit``.

    Raises:
        RunFileError: Unknown field or time out of range.
    """
    pyvista = import_optional("pyvista", "3D pictures")

    i = run.time_index(time) if index is None else index
    names = list(run.species) if fields is None else [run.check_field(f) for f in fields]
    hx, hy, hz = run.spacing
    grid = pyvista.ImageData(
        dimensions=run.grid_shape, spacing=run.spacing, origin=(hx / 2, hy / 2, hz / 2)
    )
    for name in names:
        grid.point_data[name] = run.field(name, i).ravel(order="F")
    if include_maps:
        for name in run.map_names:
            if name not in grid.point_data:
                grid.point_data[name] = run.map(name).ravel(order="F")
    grid.field_data["time"] = np.array([run.times[i]])
    grid.field_data["length_unit"] = [run.length_unit]
    grid.field_data["time_unit"] = [run.time_unit]
    return grid


class _open:
    """Open a run file read-only, turning h5py's OSError into a one-line RunFileError."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh: Any = None

    def __enter__(self) -> Any:
        import h5py

        if not self.path.is_file():
            raise RunFileError(f"run file not found: {self.path}")
        try:
            self.fh = h5py.File(self.path, "r")
        except OSError as exc:
            raise RunFileError(f"cannot open {self.path} as HDF5: {exc}") from exc
        return self.fh

    def __exit__(self, *exc: object) -> None:
        self.fh.close()


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (str, float, int or list)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _unit_attr(ds: Any) -> str:
    for key in ("units", "unit"):
        if key in ds.attrs:
            return str(_plain(ds.attrs[key]))
    return ""


def _grid_shape(attrs: dict[str, Any], h5_path: Path) -> tuple[int, int, int]:
    shape = attrs.pop("grid_shape", None)
    values = np.asarray(shape if shape is not None else [], dtype=np.int64).reshape(-1)
    if values.size != 3 or np.any(values < 1):
        raise RunFileError(f"{h5_path}: grid_shape attribute {shape!r} is not three positive ints")
    return (int(values[0]), int(values[1]), int(values[2]))


def _grid_spacing(attrs: dict[str, Any], h5_path: Path) -> tuple[float, float, float]:
    spacing = attrs.pop("grid_spacing", None)
    values = np.asarray(spacing if spacing is not None else [], dtype=np.float64).reshape(-1)
    if values.size == 1:
        values = np.repeat(values, 3)
    if values.size != 3 or not np.all(values > 0):
        raise RunFileError(
            f"{h5_path}: grid_spacing attribute {spacing!r} is not three positive numbers"
        )
    return (float(values[0]), float(values[1]), float(values[2]))


def _check_field_shape(
    h5_path: Path, name: str, shape: tuple[int, ...], grid_shape: tuple[int, int, int], n: int
) -> None:
    if len(shape) != 4 or shape[1:] != grid_shape or shape[0] < n:
        raise RunFileError(
            f"{h5_path}: /fields/{name} has shape {shape}, expected ({n}, {', '.join(map(str, grid_shape))})"
        )


def _read_series(fh: Any, h5_path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``/timeseries/time`` and every other 1-D dataset of the same length under it."""
    group = fh.get("timeseries")
    if group is None:
        return np.zeros(0), {}
    if "time" not in group:
        raise RunFileError(f"{h5_path}: /timeseries has no time dataset")
    time = np.asarray(group["time"][...], dtype=np.float64).reshape(-1)
    series: dict[str, np.ndarray] = {}
    for name in group:
        if name == "time":
            continue
        values = np.asarray(group[name][...], dtype=np.float64)
        if values.ndim != 1 or values.size != time.size:
            logger.warning(
                "%s: /timeseries/%s has shape %s, not (%d,); skipped",
                h5_path,
                name,
                values.shape,
                time.size,
            )
            continue
        series[name] = values
    return time, series


def _dose_times(raw: Any, h5_path: Path) -> dict[str, tuple[float, ...]]:
    """Parse ``dose_times_json`` (agent -> list of times); a malformed one is logged and dropped."""
    if raw is None or raw == "":
        return {}
    try:
        parsed = json.loads(raw)
        return {str(agent): tuple(float(t) for t in times) for agent, times in parsed.items()}
    except (TypeError, ValueError, AttributeError) as exc:
        logger.warning("%s: ignoring malformed dose_times_json (%s)", h5_path, exc)
        return {}
