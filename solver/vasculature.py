"""Static vessel maps w(x): where blood supplies drug, oxygen and immune cells to tissue.

The map enters the vascular supply terms of DESIGN.md section 2,
``Q_i = P_i (S/V) w(x) (X_p(t) - u_i)`` and the immune infiltration rate
``rate * w(x) * C(t)``. It is a *relative* local vessel density: non-negative and
normalised to mean 1 over the grid, so that the parameter S/V keeps its meaning of
the domain-averaged vessel surface per tissue volume (40-200 cm^-1 in tissue).

Grid convention (shared with :mod:`solver.tumour_shapes`): arrays of shape
``(nx, ny, nz)`` in C order, cell-centred; cell ``(i, j, k)`` has centre
``((i + 0.5) hx, (j + 0.5) hy, (k + 0.5) hz)`` and the domain is
``[0, nx hx] x [0, ny hy] x [0, nz hz]``. Lengths in the options below are in the
same unit as ``spacing`` (the defaults assume micrometres).

Public API:
    vessel_map(shape, spacing, kind, seed=0, **options) -> ndarray (float64, mean 1)
    load_map(path, shape, dataset=None, *, what="vessel map") -> ndarray (float64, as stored)
    normalise_map(w, what="vessel map") -> ndarray (float64, mean 1)
    VESSEL_MAP_OPTIONS: kind -> {option name: default}
    MAP_FILE_EXTENSIONS: the file extensions load_map reads
    core_mask(r, core_radius, rim_width) -> ndarray (the smooth 0 -> 1 core mask)

Host-side helpers shared with :mod:`solver.tumour_shapes` (not the solver's
:class:`solver.grid.Grid`): ``MapGrid``, ``check_grid``, ``check_shape``,
``check_triple``, ``check_number``.

Kinds of :func:`vessel_map`:
    "uniform":       w = 1 everywhere (well-perfused tissue; the ODE limit).
    "network":       a random network of gently curving capillary tubes.
    "necrotic_core": the network, switched off inside a sphere (avascular core),
                     optionally denser in a shell around it (angiogenic rim).
    "file":          a map read by :func:`load_map` and normalised to mean 1.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from solver.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "MAP_FILE_EXTENSIONS",
    "VESSEL_MAP_OPTIONS",
    "core_mask",
    "load_map",
    "normalise_map",
    "vessel_map",
]

# --------------------------------------------------------------------------- options

_NETWORK_OPTIONS: dict[str, Any] = {
    "volume_fraction": 0.03,  # fraction of the domain volume inside vessel tubes (0, 0.5]
    "radius": 5.0,  # tube radius, length unit of spacing (5 um capillary)
    "min_radius_cells": 1.0,  # drawn radius >= this many largest grid spacings
    "edge": None,  # tanh edge width of the tube wall; None -> largest grid spacing
    "segment_length": None,  # length of one straight piece; None -> 20 x drawn radius
    "pieces": 4,  # straight pieces per vessel (a polyline)
    "tortuosity": 0.3,  # scale of the random turn between pieces, radians (0 = straight)
}

_NECROTIC_OPTIONS: dict[str, Any] = {
    **_NETWORK_OPTIONS,
    "centre": None,  # core centre (x, y, z); None -> domain centre
    "core_radius": None,  # radius where the mask is 1/2; None -> 1/4 of smallest extent
    "rim_width": None,  # width of the 0 -> 1 ramp of the mask; None -> 2 largest spacings
    "rim_boost": 0.0,  # extra vessel volume fraction in the angiogenic rim, relative (1 = 2x)
    "boost_width": None,  # thickness of the angiogenic rim shell; None -> core_radius / 2
}

VESSEL_MAP_OPTIONS: dict[str, dict[str, Any]] = {
    "uniform": {},
    "network": _NETWORK_OPTIONS,
    "necrotic_core": _NECROTIC_OPTIONS,
    "file": {"path": None, "dataset": None},
}
"""Valid options of each vessel map kind, with their defaults."""

MAP_FILE_EXTENSIONS: tuple[str, ...] = (".npy", ".h5", ".hdf5")
"""File extensions :func:`load_map` reads."""

# Tube profile 1/2 (1 - tanh((d - r)/edge)) is cut off beyond d = r + _CUTOFF_EDGES * edge,
# where it is below 1.2e-7 of its peak.
_CUTOFF_EDGES = 8.0


# ------------------------------------------------------------------------------ grid


@dataclass(frozen=True)
class MapGrid:
    """Geometry of a validated cell-centred grid, for building static maps on the host.

    Attributes:
        shape: Cells per axis (nx, ny, nz).
        spacing: Cell widths (hx, hy, hz).
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @property
    def extent(self) -> np.ndarray:
        """Domain lengths (nx hx, ny hy, nz hz)."""
        return np.array(self.shape, dtype=np.float64) * np.array(self.spacing)

    @property
    def centre(self) -> np.ndarray:
        """Centre of the domain."""
        return 0.5 * self.extent

    @property
    def h_max(self) -> float:
        """Largest grid spacing: the length a feature must span to be resolved."""
        return max(self.spacing)

    @property
    def cell_volume(self) -> float:
        """Volume hx hy hz of one cell."""
        return float(np.prod(self.spacing))

    def axis_centres(self, axis: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Cell-centre coordinates (i + 0.5) h along one axis, for i in [start, stop)."""
        stop = self.shape[axis] if stop is None else stop
        return (np.arange(start, stop, dtype=np.float64) + 0.5) * self.spacing[axis]

    def offsets(self, point: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cell-centre coordinates minus ``point``, shaped to broadcast to the grid."""
        return (
            (self.axis_centres(0) - point[0])[:, None, None],
            (self.axis_centres(1) - point[1])[None, :, None],
            (self.axis_centres(2) - point[2])[None, None, :],
        )


def check_grid(shape: Sequence[int], spacing: Sequence[float]) -> MapGrid:
    """Validate a grid shape and spacing.

    Args:
        shape: Three positive cell counts (nx, ny, nz).
        spacing: Three positive finite cell widths (hx, hy, hz).

    Returns:
        The validated :class:`MapGrid`.

    Raises:
        ConfigError: If either is malformed.
    """
    return MapGrid(check_shape(shape), check_triple(spacing, "grid spacing", positive=True))


def check_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    """Validate a grid shape: three positive integers."""
    try:
        items = list(shape)
    except TypeError:
        items = []
    if len(items) != 3 or not all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in items
    ):
        raise ConfigError(f"grid shape {shape!r} is invalid; expected three positive integers")
    return (int(items[0]), int(items[1]), int(items[2]))


def check_triple(value: Any, name: str, *, positive: bool = False) -> tuple[float, float, float]:
    """Validate three finite numbers (strictly positive if asked)."""
    try:
        items = [float(v) for v in value]
    except (TypeError, ValueError):
        items = []
    bad = len(items) != 3 or not all(math.isfinite(v) and (v > 0 or not positive) for v in items)
    if bad:
        kind = "positive finite numbers" if positive else "finite numbers"
        raise ConfigError(f"{name} {value!r} is invalid; expected three {kind}")
    return (items[0], items[1], items[2])


def check_number(
    value: Any, name: str, *, low: float, high: float = math.inf, low_open: bool = True
) -> float:
    """Validate one finite number in (low, high] (or [low, high] with ``low_open=False``)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool):
        number = math.nan
    above_low = number > low if low_open else number >= low
    if not (math.isfinite(number) and above_low and number <= high):
        bracket = "(" if low_open else "["
        hi = "inf)" if math.isinf(high) else f"{high:g}]"
        raise ConfigError(f"{name} = {value!r} is out of range; allowed: {bracket}{low:g}, {hi}")
    return number


# ------------------------------------------------------------------------- public API


def vessel_map(
    shape: Sequence[int],
    spacing: Sequence[float],
    kind: str,
    seed: int = 0,
    **options: Any,
) -> np.ndarray:
    """Build a vessel map w(x) >= 0 with mean exactly 1 over the grid.

    Args:
        shape: Cells per axis (nx, ny, nz).
        spacing: Cell widths (hx, hy, hz); every length option uses the same unit.
        kind: "uniform", "network", "necrotic_core" or "file".
        seed: Seed of ``numpy.random.default_rng``; the same seed gives the same map.
        **options: Options of the kind, see ``VESSEL_MAP_OPTIONS`` and below.

    Options of "network" (lengths in the unit of ``spacing``):
        volume_fraction (0.03): fraction of the domain volume inside vessel tubes
            (cells whose centre lies within the drawn radius of a vessel axis);
            vessels are added until it is reached. Allowed (0, 0.5].
        radius (5.0): tube radius (5 um capillaries when spacing is in um).
        min_radius_cells (1.0): the drawn radius is max(radius, min_radius_cells *
            max(spacing)), so every tube is resolved on the grid; a raised radius is
            logged.
        edge (None -> max(spacing)): width of the smooth wall profile
            w_tube(d) = 1/2 (1 - tanh((d - r) / edge)), d the distance to the axis.
        segment_length (None -> 20 x drawn radius): length of one straight piece.
        pieces (4): straight pieces per vessel; each vessel is a polyline.
        tortuosity (0.3): scale of the random turn between pieces, in radians.

    Options of "necrotic_core" (all of "network", plus):
        centre (None -> domain centre): centre (x, y, z) of the core.
        core_radius (None -> 1/4 of the smallest domain extent): radius at which the
            mask is 1/2.
        rim_width (None -> 2 max(spacing)): the mask is exactly 0 for
            r <= core_radius - rim_width/2, exactly 1 for r >= core_radius + rim_width/2,
            and a C2 smoothstep in between.
        rim_boost (0.0): the vessel volume fraction in the angiogenic rim, the shell
            core_radius + rim_width/2 <= r <= that + boost_width, is raised to
            (1 + rim_boost) * volume_fraction by extra vessels started in the shell.
        boost_width (None -> core_radius / 2): thickness of the angiogenic rim shell.

    Options of "file":
        path (required): a .npy, .h5 or .hdf5 file, see :func:`load_map`.
        dataset (None): dataset name inside an HDF5 file.

    Returns:
        float64 array of ``shape`` with w >= 0 and mean 1.

    Raises:
        ConfigError: On an unknown kind or option, an option out of range, a
            vessel radius too large for the domain, or a map that is zero everywhere.
    """
    grid = check_grid(shape, spacing)
    opts = _resolve_options(kind, options)
    seed = _check_seed(seed)
    if kind == "uniform":
        return np.ones(grid.shape, dtype=np.float64)
    if kind == "file":
        if opts["path"] is None:
            raise ConfigError("vessel map kind 'file' needs the option 'path' (.npy, .h5, .hdf5)")
        return normalise_map(load_map(opts["path"], grid.shape, opts["dataset"]))

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    tubes = _TubeParams.from_options(opts, grid)
    raw = np.zeros(grid.shape, dtype=np.float64)
    _grow_network(raw, grid, rng, tubes, tubes.volume_fraction)
    if kind == "necrotic_core":
        _apply_necrotic_core(raw, grid, rng, tubes, opts)
    logger.debug(
        "vessel map %s on %s built in %.3f s", kind, grid.shape, time.perf_counter() - started
    )
    return normalise_map(raw)


def normalise_map(w: np.ndarray, what: str = "vessel map") -> np.ndarray:
    """Return ``w / mean(w)`` as float64, so the map has mean 1 over the grid.

    Args:
        w: Non-negative finite map.
        what: Name of the map used in error messages.

    Raises:
        ConfigError: If ``w`` has non-finite or negative values, or is zero everywhere.
    """
    w = np.asarray(w, dtype=np.float64)
    _check_values(w, what)
    mean = float(w.mean())
    if not mean > 0.0:
        raise ConfigError(f"{what} is zero everywhere; it cannot be normalised to mean 1")
    return w / mean


def load_map(
    path: str | Path,
    shape: Sequence[int],
    dataset: str | None = None,
    *,
    what: str = "vessel map",
) -> np.ndarray:
    """Read a static map from a .npy or HDF5 file and check it fits the grid.

    The values are returned as stored (converted to float64, not normalised; see
    :func:`normalise_map`).

    Args:
        path: A ``.npy``, ``.h5`` or ``.hdf5`` file.
        shape: The grid shape (nx, ny, nz) the map must have.
        dataset: Dataset path inside an HDF5 file; may be omitted when the file holds
            exactly one dataset. Not allowed for .npy files.
        what: Name of the map used in error messages.

    Returns:
        float64 C-ordered array of ``shape``, finite and >= 0.

    Raises:
        ConfigError: With a one-line message naming the file, if it is missing,
            unreadable, of an unsupported extension, lacks the dataset, has another
            shape, a non-real dtype, or non-finite or negative values.
    """
    grid_shape = check_shape(shape)
    file = Path(path)
    label = f"{what} file {path}"
    allowed = ", ".join(MAP_FILE_EXTENSIONS)
    suffix = file.suffix.lower()
    if suffix not in MAP_FILE_EXTENSIONS:
        found = f"extension '{file.suffix}'" if file.suffix else "no extension"
        raise ConfigError(f"{label} has {found}; allowed extensions: {allowed}")
    if not file.exists():
        raise ConfigError(f"{label} does not exist")
    if not file.is_file():
        raise ConfigError(f"{label} is not a regular file")
    if suffix == ".npy":
        if dataset is not None:
            raise ConfigError(
                f"{label} is a .npy file, which has no datasets; "
                f"dataset = {dataset!r} applies only to .h5/.hdf5 files"
            )
        array = _read_npy(file, label)
    else:
        array, label = _read_hdf5(file, dataset, label)
    if array.dtype.kind not in "biuf":
        raise ConfigError(f"{label} has dtype {array.dtype}; a real numeric array is required")
    if tuple(array.shape) != grid_shape:
        raise ConfigError(f"{label} has shape {tuple(array.shape)}; the grid is {grid_shape}")
    array = np.ascontiguousarray(array, dtype=np.float64)
    _check_values(array, label)
    return array


# ----------------------------------------------------------------------- option checks


def _resolve_options(kind: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Merge user options over the defaults of ``kind``; unknown names are errors."""
    if not isinstance(kind, str) or kind not in VESSEL_MAP_OPTIONS:
        valid = ", ".join(sorted(VESSEL_MAP_OPTIONS))
        raise ConfigError(f"unknown vessel map kind {kind!r}; valid kinds: {valid}")
    defaults = VESSEL_MAP_OPTIONS[kind]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        valid = ", ".join(sorted(defaults)) if defaults else "none"
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for vessel map kind '{kind}'; "
            f"valid options: {valid}"
        )
    return {**defaults, **options}


def _check_seed(seed: Any) -> int:
    """A seed must be a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"vessel map seed {seed!r} is invalid; expected an integer >= 0")
    return int(seed)


def _check_values(array: np.ndarray, label: str) -> None:
    """Reject non-finite and negative entries with a count and the offending extreme."""
    finite = np.isfinite(array)
    if not finite.all():
        count = int(array.size - np.count_nonzero(finite))
        raise ConfigError(
            f"{label} holds {count} non-finite value(s) (NaN or inf); "
            "all values must be finite and >= 0"
        )
    negative = array < 0
    if negative.any():
        raise ConfigError(
            f"{label} holds {int(np.count_nonzero(negative))} negative value(s) "
            f"(min {float(array.min()):g}); all values must be finite and >= 0"
        )


# ------------------------------------------------------------------------- file readers


def _one_line(exc: BaseException) -> str:
    """An exception's message folded onto one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _read_npy(file: Path, label: str) -> np.ndarray:
    """Load a .npy array without pickles."""
    try:
        array = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ConfigError(f"{label} could not be read as a .npy array ({_one_line(exc)})") from exc
    if not isinstance(array, np.ndarray):  # np.load returns an NpzFile for zip archives
        raise ConfigError(f"{label} is not a single .npy array (it is a .npz archive)")
    return array


def _read_hdf5(file: Path, dataset: str | None, label: str) -> tuple[np.ndarray, str]:
    """Read one dataset of an HDF5 file; returns it and a label naming the dataset."""
    try:
        import h5py
    except ImportError as exc:
        raise ConfigError(f"{label} is HDF5, which needs h5py (pip install h5py)") from exc
    try:
        handle = h5py.File(file, "r")
    except OSError as exc:
        raise ConfigError(f"{label} could not be opened as HDF5 ({_one_line(exc)})") from exc
    with handle:
        names: list[str] = []
        handle.visititems(
            lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None
        )
        if dataset is None:
            if not names:
                raise ConfigError(f"{label} contains no datasets")
            if len(names) > 1:
                raise ConfigError(
                    f"{label} holds {len(names)} datasets ({_name_list(names)}); "
                    "name one with the option 'dataset'"
                )
            key = names[0]
        else:
            key = str(dataset).strip("/")
            if key not in names:
                present = _name_list(names) if names else "none"
                raise ConfigError(
                    f"{label} has no dataset '{dataset}'; datasets present: {present}"
                )
        array = np.asarray(handle[key][()])
    return array, f"{label} dataset '{key}'"


def _name_list(names: Sequence[str], limit: int = 20) -> str:
    """Comma-separated names, cut after ``limit`` with a count of the rest."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names) - limit} more)"


# ------------------------------------------------------------------------ tube network


@dataclass(frozen=True)
class _TubeParams:
    """Resolved geometry of the capillary network (lengths in the unit of spacing)."""

    volume_fraction: float
    radius: float  # drawn radius
    edge: float
    segment_length: float
    pieces: int
    tortuosity: float

    @property
    def cutoff(self) -> float:
        """Distance to the axis beyond which the tube profile is taken as 0."""
        return self.radius + _CUTOFF_EDGES * self.edge

    @classmethod
    def from_options(cls, opts: Mapping[str, Any], grid: MapGrid) -> _TubeParams:
        """Check the network options and resolve the grid-dependent defaults."""
        fraction = check_number(opts["volume_fraction"], "volume_fraction", low=0.0, high=0.5)
        radius = check_number(opts["radius"], "radius", low=0.0)
        min_cells = check_number(
            opts["min_radius_cells"], "min_radius_cells", low=0.0, low_open=False
        )
        drawn = max(radius, min_cells * grid.h_max)
        if drawn > radius:
            logger.info(
                "vessel radius %g raised to %g (min_radius_cells=%g x largest spacing %g) "
                "so that tubes are resolved on the grid",
                radius,
                drawn,
                min_cells,
                grid.h_max,
            )
        smallest = float(grid.extent.min())
        if drawn > 0.25 * smallest:
            raise ConfigError(
                f"vessel radius {drawn:g} exceeds a quarter of the smallest domain extent "
                f"{smallest:g}; radius is in the length unit of spacing "
                "(e.g. radius 5 with spacing in um)"
            )
        edge = grid.h_max if opts["edge"] is None else check_number(opts["edge"], "edge", low=0.0)
        length = (
            20.0 * drawn
            if opts["segment_length"] is None
            else check_number(opts["segment_length"], "segment_length", low=0.0)
        )
        pieces = opts["pieces"]
        if isinstance(pieces, bool) or not isinstance(pieces, (int, np.integer)) or pieces < 1:
            raise ConfigError(f"pieces = {pieces!r} is invalid; expected an integer >= 1")
        tortuosity = check_number(
            opts["tortuosity"], "tortuosity", low=0.0, high=math.pi, low_open=False
        )
        return cls(fraction, drawn, edge, length, int(pieces), tortuosity)


def _grow_network(
    raw: np.ndarray,
    grid: MapGrid,
    rng: np.random.Generator,
    tubes: _TubeParams,
    target: float,
    region: np.ndarray | None = None,
) -> None:
    """Add random vessels to ``raw`` until the tube volume fraction reaches ``target``.

    The fraction is counted over the cells of ``region`` (a boolean mask; the whole
    grid if None), as cells whose centre lies within the drawn radius of some vessel
    axis (raw >= 1/2). Vessels start uniformly in the domain (or in a random cell of
    ``region``), head in a uniformly random direction, and turn by a random angle of
    scale ``tortuosity`` between pieces. Stops as soon as the target is reached, so
    it overshoots by at most one piece.
    """
    region_cells = raw.size if region is None else int(np.count_nonzero(region))
    if region_cells == 0:
        raise ConfigError("the region to fill with vessels holds no cell centre of the grid")
    starts = None if region is None else np.flatnonzero(region)
    needed = target * region_cells
    covered = float(np.count_nonzero(raw >= 0.5 if region is None else (raw >= 0.5) & region))
    piece_volume = math.pi * tubes.radius**2 * tubes.segment_length
    expected = needed * grid.cell_volume / piece_volume
    max_pieces = int(50 * expected) + 1000
    drawn = 0
    while covered < needed:
        point = _random_start(grid, rng, starts)
        direction = _unit(rng.normal(size=3))
        for _ in range(tubes.pieces):
            end = point + tubes.segment_length * direction
            covered += _draw_segment(raw, grid, point, end, tubes, region)
            drawn += 1
            if covered >= needed:
                break
            point = end
            direction = _unit(direction + tubes.tortuosity * rng.normal(size=3))
        if drawn > max_pieces:
            raise ConfigError(
                f"vessel volume fraction {target:g} not reached after {drawn} vessel pieces "
                f"(reached {covered / region_cells:.3g}); lower volume_fraction or raise radius"
            )
    logger.debug(
        "vessel network: %d pieces, tube volume fraction %.4f (target %.4f)",
        drawn,
        covered / region_cells,
        target,
    )


def _random_start(grid: MapGrid, rng: np.random.Generator, starts: np.ndarray | None) -> np.ndarray:
    """A start point uniform in the domain, or uniform in a random cell of ``starts``."""
    extent = grid.extent
    if starts is None:
        return rng.uniform(0.0, 1.0, size=3) * extent
    cell = np.array(np.unravel_index(starts[rng.integers(starts.size)], grid.shape))
    return (cell + rng.uniform(0.0, 1.0, size=3)) * np.array(grid.spacing)


def _unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to length 1 (a random axis if it is zero)."""
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else np.array([1.0, 0.0, 0.0])


def _draw_segment(
    raw: np.ndarray,
    grid: MapGrid,
    start: np.ndarray,
    end: np.ndarray,
    tubes: _TubeParams,
    region: np.ndarray | None,
) -> int:
    """Union (pointwise max) a straight tube onto ``raw``; return the newly covered cells.

    Long segments are cut into chunks no longer than twice the profile cutoff so that
    each chunk's axis-aligned bounding box stays tight.
    """
    length = float(np.linalg.norm(end - start))
    chunks = max(1, math.ceil(length / (2.0 * tubes.cutoff)))
    gained = 0
    for c in range(chunks):
        a = start + (end - start) * (c / chunks)
        b = start + (end - start) * ((c + 1) / chunks)
        gained += _draw_chunk(raw, grid, a, b, tubes, region)
    return gained


def _draw_chunk(
    raw: np.ndarray,
    grid: MapGrid,
    a: np.ndarray,
    b: np.ndarray,
    tubes: _TubeParams,
    region: np.ndarray | None,
) -> int:
    """Rasterise the tube around segment a-b inside its bounding box (vectorised).

    Distance of a cell centre p to the segment: with t = clip((p - a).u / |u|^2, 0, 1)
    and u = b - a, d^2 = |p - a|^2 - 2 t (p - a).u + t^2 |u|^2.
    """
    cutoff = tubes.cutoff
    spacing = np.array(grid.spacing)
    low = np.floor((np.minimum(a, b) - cutoff) / spacing - 0.5).astype(int)
    high = np.ceil((np.maximum(a, b) + cutoff) / spacing - 0.5).astype(int) + 1
    low = np.clip(low, 0, grid.shape)
    high = np.clip(high, 0, grid.shape)
    if np.any(high <= low):
        return 0
    px = (grid.axis_centres(0, low[0], high[0]) - a[0])[:, None, None]
    py = (grid.axis_centres(1, low[1], high[1]) - a[1])[None, :, None]
    pz = (grid.axis_centres(2, low[2], high[2]) - a[2])[None, None, :]
    u = b - a
    u2 = float(u @ u)
    along = px * u[0] + py * u[1] + pz * u[2]
    t = np.clip(along / u2, 0.0, 1.0) if u2 > 0 else np.zeros_like(along)
    dist2 = (px * px + py * py + pz * pz) - 2.0 * t * along + (t * t) * u2
    np.maximum(dist2, 0.0, out=dist2)
    window = tuple(slice(lo, hi) for lo, hi in zip(low, high, strict=True))
    view = raw[window]
    newly = (dist2 <= tubes.radius**2) & (view < 0.5)
    if region is not None:
        newly &= region[window]
    # 1/2 (1 - tanh(x)) = 1 / (1 + exp(2x)); x clipped so exp cannot overflow.
    x = np.minimum((np.sqrt(dist2) - tubes.radius) / tubes.edge, 300.0)
    profile = 1.0 / (1.0 + np.exp(2.0 * x))
    np.maximum(view, profile, out=view)
    return int(np.count_nonzero(newly))


# ------------------------------------------------------------------------ necrotic core


def _apply_necrotic_core(
    raw: np.ndarray,
    grid: MapGrid,
    rng: np.random.Generator,
    tubes: _TubeParams,
    opts: Mapping[str, Any],
) -> None:
    """Optionally densify the angiogenic rim, then multiply by the core mask (in place)."""
    centre = np.array(
        grid.centre if opts["centre"] is None else check_triple(opts["centre"], "centre")
    )
    smallest = float(grid.extent.min())
    core_radius = (
        0.25 * smallest
        if opts["core_radius"] is None
        else check_number(opts["core_radius"], "core_radius", low=0.0)
    )
    rim_width = (
        2.0 * grid.h_max
        if opts["rim_width"] is None
        else check_number(opts["rim_width"], "rim_width", low=0.0)
    )
    if rim_width < grid.h_max:
        logger.warning(
            "rim_width %g is below the largest grid spacing %g: the core edge is a jump",
            rim_width,
            grid.h_max,
        )
    rim_boost = check_number(opts["rim_boost"], "rim_boost", low=0.0, low_open=False)
    boost_width = (
        0.5 * core_radius
        if opts["boost_width"] is None
        else check_number(opts["boost_width"], "boost_width", low=0.0)
    )
    dx, dy, dz = grid.offsets(centre)
    r = np.sqrt(dx * dx + dy * dy + dz * dz)
    outer = core_radius + 0.5 * rim_width
    if rim_boost > 0.0:
        shell = (r >= outer) & (r <= outer + boost_width)
        if not shell.any():
            raise ConfigError(
                f"the angiogenic rim {outer:g} <= r <= {outer + boost_width:g} around "
                f"{tuple(centre)} holds no cell centre; widen boost_width or move the core"
            )
        _grow_network(raw, grid, rng, tubes, (1.0 + rim_boost) * tubes.volume_fraction, shell)
    raw *= core_mask(r, core_radius, rim_width)
    if not raw.any():
        raise ConfigError(
            f"vessel map is zero everywhere: the necrotic core (core_radius {core_radius:g} "
            f"at {tuple(float(c) for c in centre)}) covers every vessel; "
            "use a smaller core_radius or move the centre"
        )


def core_mask(r: np.ndarray, core_radius: float, rim_width: float) -> np.ndarray:
    """Smooth 0 -> 1 ramp in the distance r from the core centre.

    m(r) = S((r - (R - W/2)) / W) with S(s) = s^3 (6 s^2 - 15 s + 10) for s in [0, 1]
    (the C2 "smootherstep"), S = 0 below and 1 above. So m = 0 exactly for
    r <= R - W/2, m = 1 exactly for r >= R + W/2, and m(R) = 1/2.

    Args:
        r: Distances from the core centre.
        core_radius: R, where the mask is 1/2.
        rim_width: W, the width of the ramp.
    """
    s = np.clip((r - (core_radius - 0.5 * rim_width)) / rim_width, 0.0, 1.0)
    return s * s * s * (s * (6.0 * s - 15.0) + 10.0)
