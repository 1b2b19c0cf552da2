"""Static vessel maps w(x): where blood supplies drug, oxygen and immune cells to tissue.

Public API:
    vessel_map(shape, spacing, kind="network", seed=0, **options) -> ndarray (float64, mean 1)
    generate_vessels(grid, options, base_dir=".") -> ndarray   from validated options
    vessel_points(grid, options) -> (points, weights)          the physical network as
                                                              weighted points (um, um^3)
    normalise_map(w, what="vessel map") -> ndarray (float64, mean 1)
    core_mask(r, core_radius, rim_width) -> ndarray              the smooth 0 -> 1 core mask

The map enters the vascular supply terms, P_i (S/V) w(x) (X_p(t) - u_i), and the
immune infiltration rate (docs/model.md). It is a *relative* local vessel density:
non-negative and normalised to mean 1 over the grid, so that the parameter S/V keeps its
meaning of the domain-averaged vessel surface per tissue volume (40-200 cm^-1 in tissue).

Geometry lives in physical space, not on the grid: a seed and the options define one
network of tubes (axes, radius, lengths in the unit of the spacing) whatever the grid,
and each grid gets the cell average of that network's vessel volume. The tube volume is
carried by a fixed set of weighted points (along each axis every radius, four points
over the cross-section, each carrying its share of pi r^2 ds); a cell's value is the
volume of the points inside it over the cell volume. So a 2x finer grid of the same
domain block-averages exactly to the coarser one (tests/test_vessel_maps.py), and a grid
refinement study refines the same vessels. A tube thinner than the cells is represented
by its volume density, not by its wall (an INFO line says so; nothing is widened).
A core edge or core narrower than a cell cannot be resolved: a WARNING says so.

Grid convention: arrays of shape (nx, ny, nz) in C order, cell-centred; cell (i, j, k)
spans [i hx, (i + 1) hx) x ... and the domain is [0, nx hx] x [0, ny hy] x [0, nz hz].
The options, their defaults and ranges are the typed models of solver/config/sources.py
(UniformVessels, NetworkVessels, NecroticCoreVessels, FileVessels).

Kinds:
    "uniform":       w = 1 everywhere (well-perfused tissue; the ODE limit).
    "network":       a random network of gently curving capillaries: each vessel is a
                     polyline of `pieces` straight pieces of `segment_length` with a
                     random turn of scale `tortuosity` between them, started at a uniform
                     random point with a uniform random direction. Vessels are added until
                     the tube volume inside the domain (overlaps counted twice) reaches
                     `volume_fraction` of the domain's volume.
    "necrotic_core": the network multiplied by a smooth mask that is 0 inside a sphere
                     (avascular core; 1/2 at core_radius, a C2 ramp of width rim_width),
                     optionally denser in a shell around it (angiogenic rim): extra vessels
                     started in the shell until its fraction is (1 + rim_boost) times.
    "file":          a map read from .npy or .h5 (solver/fields/array_files.py),
                     normalised to mean 1.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from solver.config.sources import (
    FileVessels,
    NecroticCoreVessels,
    NetworkVessels,
    UniformVessels,
    vessel_options,
)
from solver.errors import ConfigError
from solver.fields.array_files import check_values, read_array
from solver.grid import Grid
from solver.units import length_in

log = logging.getLogger(__name__)



def vessel_map(shape, spacing, kind: str = "network", seed: int = 0, **options: Any) -> np.ndarray:
    """Build a vessel map w(x) >= 0 with mean exactly 1 over the grid (the Python API).

    Args:
        shape: Cells per axis (nx, ny, nz).
        spacing: Cell widths (hx, hy, hz); every length option uses the same unit.
        kind: "uniform", "network", "necrotic_core" or "file".
        seed: Seed of numpy.random.default_rng; the same seed gives the same map.
        **options: Options of the kind (solver/config/sources.py).

    Raises:
        ConfigError: an unknown kind or option, an option out of range, a vessel radius
            too large for the domain, or a map that is zero everywhere.
    """
    if isinstance(options.get("path"), Path):
        options["path"] = str(options["path"])
    return generate_vessels(Grid(shape, spacing), vessel_options({"kind": kind, "seed": seed, **options}))


# The last few maps of grids up to 128^3, kept in this process: a study's members (the same
# tissue under other treatments) and repeated runs of one config build each network once.
# The map is a pure function of the options and the grid (the seed fixes every random draw).
_RECENT_MAPS: OrderedDict[tuple, np.ndarray] = OrderedDict()
_RECENT_LOCK = threading.Lock()
_CACHED_MAPS = 4
_CACHED_CELLS = 128**3


def generate_vessels(grid: Grid, options: Any, base_dir: str | Path = ".") -> np.ndarray:
    """The vessel map of validated `options` on `grid` (float64, w >= 0, mean 1).

    `base_dir` resolves a relative path of a "file" map (the config's folder).
    """
    if isinstance(options, UniformVessels):
        return np.ones(grid.shape, dtype=np.float64)
    if isinstance(options, FileVessels):
        path = Path(options.path).expanduser()
        path = path if path.is_absolute() else Path(base_dir) / path
        return normalise_map(read_array(path, grid.shape, options.dataset))
    started = time.perf_counter()
    key = (type(options).__name__, options.model_dump_json(), grid.shape, grid.spacing, grid.length_unit)
    with _RECENT_LOCK:
        raw = _RECENT_MAPS.get(key)
    if raw is not None:  # the same network on the same grid: checked (and warned about) as if new
        _Tubes.from_options(options, grid)
        if isinstance(options, NecroticCoreVessels):
            _Core.from_options(options, grid)
        return normalise_map(raw)
    points, weights = vessel_points(grid, options)
    raw = deposit(grid, points, weights)
    if not raw.any():
        raise ConfigError(
            "vessel map is zero everywhere: the necrotic core covers every vessel; "
            "use a smaller core_radius or move the centre"
        )
    if raw.size <= _CACHED_CELLS:
        raw.flags.writeable = False
        with _RECENT_LOCK:
            _RECENT_MAPS[key] = raw
            while len(_RECENT_MAPS) > _CACHED_MAPS:
                _RECENT_MAPS.popitem(last=False)
    log.debug("vessel map %s on %s from %d points in %.3f s", options.kind, grid.shape, len(weights),
              time.perf_counter() - started)
    return normalise_map(raw)


def normalise_map(w: np.ndarray, what: str = "vessel map") -> np.ndarray:
    """Return w / mean(w) as float64, so the map has mean 1 over the grid.

    Raises:
        ConfigError: w has non-finite or negative values, or is zero everywhere.
    """
    w = np.asarray(w, dtype=np.float64)
    check_values(w, what)
    mean = float(w.mean())
    if not mean > 0.0:
        raise ConfigError(f"{what} is zero everywhere; it cannot be normalised to mean 1")
    return w / mean


CAPILLARY_RADIUS_UM = 5.0  # a vessel network's tube radius when none is given [phys: capillaries]


def capillary_radius(length_unit: str) -> float:
    """The default tube radius, 5 um, in the grid's `length_unit` (5.0 when it has none)."""
    radius = length_in(CAPILLARY_RADIUS_UM, "um", length_unit)
    return CAPILLARY_RADIUS_UM if radius is None else radius


@dataclass(frozen=True)
class _Tubes:
    """The network's geometry (lengths in the unit of the spacing)."""

    volume_fraction: float
    radius: float
    segment_length: float
    pieces: int
    tortuosity: float

    @property
    def step(self) -> float:
        """Distance between the cross-sections that carry the tube's volume."""
        return self.radius

    @classmethod
    def from_options(cls, opts: NetworkVessels, grid: Grid) -> _Tubes:
        smallest = float(min(grid.extent))
        radius = opts.radius if opts.radius is not None else capillary_radius(grid.length_unit)
        if radius > 0.25 * smallest:
            raise ConfigError(
                f"vessel radius {radius:g} exceeds a quarter of the smallest domain extent "
                f"{smallest:g}; radius is in the length unit of spacing "
                "(e.g. radius 5 with spacing in um)"
            )
        length = 20.0 * radius if opts.segment_length is None else opts.segment_length
        if radius < 0.5 * min(grid.spacing):
            # nothing is changed: the cells hold the exact average of the network's volume
            log.info(
                "vessel radius %g is below half the grid spacing %g: each cell holds the "
                "average vessel volume of its part of the network (the map resolves the "
                "vessels' density, not their walls or the gradients within a cell)",
                radius, min(grid.spacing),
            )
        return cls(opts.volume_fraction, radius, length, opts.pieces, opts.tortuosity)


# Four points over each cross-section, each carrying 1/4 of it: a ring at radius
# sqrt(1/2) (the disc's mean r^2), turned by 45 degrees from one section to the next.
_RING = 2.0 ** -0.5
_BATCH = 256  # vessels drawn per batch: their points are computed together


def vessel_points(grid: Grid, options: NetworkVessels) -> tuple[np.ndarray, np.ndarray]:
    """The network of `options` as points (n, 3) and the vessel volume each carries (n,).

    Depends on the grid only through the domain's extent (and the core's defaults):
    the same seed and options give the same points on every grid of the same domain.
    """
    rng = np.random.default_rng(options.seed)
    tubes = _Tubes.from_options(options, grid)
    extent = np.array(grid.extent)
    points, weights = _grow(rng, tubes, extent, tubes.volume_fraction * float(np.prod(extent)), None)
    if isinstance(options, NecroticCoreVessels):
        core = _Core.from_options(options, grid)
        if options.rim_boost > 0.0:
            shell = core.shell(extent)
            extra_p, extra_w = _grow(rng, tubes, extent, (1.0 + options.rim_boost) * tubes.volume_fraction
                                     * shell.volume - float(weights[shell.contains(points)].sum()), shell)
            points, weights = np.concatenate([points, extra_p]), np.concatenate([weights, extra_w])
        r = np.linalg.norm(points - core.centre, axis=1)
        weights = weights * core_mask(r, core.radius, core.rim_width)
    return points, weights


def _grow(rng: np.random.Generator, tubes: _Tubes, extent: np.ndarray, needed: float,
          shell: _Shell | None) -> tuple[np.ndarray, np.ndarray]:
    """Vessels until the tube volume inside the domain (inside `shell` if given) reaches
    `needed`: whole pieces, so it overshoots by at most one piece."""
    piece_volume = math.pi * tubes.radius**2 * tubes.segment_length
    max_pieces = int(50 * max(needed, 0.0) / piece_volume) + 1000
    found_p, found_w = [np.zeros((0, 3))], [np.zeros(0)]
    have, drawn = 0.0, 0
    while have < needed:
        pts, wts, owner = _piece_points(_vessels(rng, tubes, extent, shell), tubes)
        inside = np.all((pts >= 0.0) & (pts < extent), axis=1)
        if shell is not None:
            inside &= shell.contains(pts)
        volume = np.bincount(owner[inside], weights=wts[inside], minlength=_BATCH * tubes.pieces)
        total = have + np.cumsum(volume)
        last = int(np.searchsorted(total, needed)) if total[-1] >= needed else len(total) - 1
        keep = inside & (owner <= last)
        found_p.append(pts[keep])
        found_w.append(wts[keep])
        have = float(total[last])
        drawn += last + 1
        if drawn > max_pieces and have < needed:
            raise ConfigError(
                f"vessel volume fraction not reached after {drawn} vessel pieces; lower "
                "volume_fraction or raise radius"
            )
    return np.concatenate(found_p), np.concatenate(found_w)


def _vessels(rng: np.random.Generator, tubes: _Tubes, extent: np.ndarray, shell: _Shell | None) -> np.ndarray:
    """A batch of vessels' pieces as (start, end) pairs, (batch * pieces, 2, 3), in order."""
    start = rng.uniform(0.0, 1.0, size=(_BATCH, 3)) * extent if shell is None else shell.starts(rng, _BATCH)
    direction = _units(rng.normal(size=(_BATCH, 3)))
    turns = rng.normal(size=(tubes.pieces, _BATCH, 3))
    pieces = np.empty((_BATCH, tubes.pieces, 2, 3))
    for k in range(tubes.pieces):
        end = start + tubes.segment_length * direction
        pieces[:, k, 0], pieces[:, k, 1] = start, end
        start, direction = end, _units(direction + tubes.tortuosity * turns[k])
    return pieces.reshape(-1, 2, 3)


def _units(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (the x axis for a zero row)."""
    norm = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.where(norm > 0, vectors / np.where(norm > 0, norm, 1.0), [[1.0, 0.0, 0.0]])


def _piece_points(pieces: np.ndarray, tubes: _Tubes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The volume-carrying points of pieces (n, 2, 3): positions, volumes, piece index."""
    start, end = pieces[:, 0], pieces[:, 1]
    axis = end - start
    length = np.linalg.norm(axis, axis=1)
    along = axis / length[:, None]
    helper = np.where(np.abs(along[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    across1 = _units(np.cross(along, helper))
    across2 = np.cross(along, across1)
    sections = max(1, math.ceil(tubes.segment_length / tubes.step))
    frac = (np.arange(sections) + 0.5) / sections
    angle = 0.5 * math.pi * np.arange(4)[None, :] + 0.25 * math.pi * (np.arange(sections)[:, None] % 2)
    cos, sin = _RING * np.cos(angle), _RING * np.sin(angle)                        # (s, 4)
    pts = (start[:, None, None, :] + frac[None, :, None, None] * axis[:, None, None, :]
           + tubes.radius * (cos[None, :, :, None] * across1[:, None, None, :]
                             + sin[None, :, :, None] * across2[:, None, None, :]))  # (n, s, 4, 3)
    volume = math.pi * tubes.radius**2 * length / (sections * 4)
    wts = np.broadcast_to(volume[:, None, None], pts.shape[:3])
    owner = np.broadcast_to(np.arange(len(pieces))[:, None, None], pts.shape[:3])
    return pts.reshape(-1, 3), wts.reshape(-1), owner.reshape(-1)


def deposit(grid: Grid, points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Cell averages of point volumes: each point's volume over its cell's volume."""
    cell = np.floor(points / np.array(grid.spacing)).astype(np.int64)
    cell = np.minimum(np.maximum(cell, 0), np.array(grid.shape) - 1)
    flat = np.ravel_multi_index(cell.T, grid.shape)
    counts = np.bincount(flat, weights=weights, minlength=int(np.prod(grid.shape)))
    return counts.reshape(grid.shape) / grid.cell_volume


# ------------------------------------------------------------------------ necrotic core


@dataclass(frozen=True)
class _Shell:
    """The angiogenic rim: inner <= |x - centre| <= outer, within the domain."""

    centre: np.ndarray
    inner: float
    outer: float
    volume: float
    extent: np.ndarray

    def contains(self, points: np.ndarray) -> np.ndarray:
        r = np.linalg.norm(points - self.centre, axis=1)
        return (r >= self.inner) & (r <= self.outer)

    def starts(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n points uniform in the shell's part of the domain (rejection sampling)."""
        found = np.zeros((0, 3))
        while len(found) < n:
            p = rng.uniform(0.0, 1.0, size=(4 * n, 3)) * self.extent
            found = np.concatenate([found, p[self.contains(p)]])
        return found[:n]


@dataclass(frozen=True)
class _Core:
    centre: np.ndarray
    radius: float
    rim_width: float
    boost_width: float

    @classmethod
    def from_options(cls, opts: NecroticCoreVessels, grid: Grid) -> _Core:
        centre = grid.centre if opts.centre is None else np.array(opts.centre, dtype=np.float64)
        radius = 0.25 * float(min(grid.extent)) if opts.core_radius is None else opts.core_radius
        rim_width = 0.2 * radius if opts.rim_width is None else opts.rim_width
        if rim_width < grid.h_max:
            log.warning("rim_width %g is below the grid spacing %g: the core edge is a jump on this grid",
                        rim_width, grid.h_max)
        if radius < grid.h_max:
            log.warning("core_radius %g is below the grid spacing %g: the avascular core is not resolved",
                        radius, grid.h_max)
        boost_width = 0.5 * radius if opts.boost_width is None else opts.boost_width
        return cls(np.asarray(centre, dtype=np.float64), radius, rim_width, boost_width)

    def shell(self, extent: np.ndarray) -> _Shell:
        inner = self.radius + 0.5 * self.rim_width
        outer = inner + self.boost_width
        # the shell's volume inside the domain, by quasi-random sampling of the domain
        # (a fixed design: independent of the grid and of the seed's other draws)
        from scipy.stats import qmc

        sample = qmc.Sobol(3, scramble=False).random_base2(16) * extent
        r = np.linalg.norm(sample - self.centre, axis=1)
        fraction = float(np.mean((r >= inner) & (r <= outer)))
        if fraction == 0.0:
            raise ConfigError(
                f"the angiogenic rim {inner:g} <= r <= {outer:g} around {tuple(self.centre)} "
                "lies outside the domain; widen boost_width or move the core"
            )
        return _Shell(self.centre, inner, outer, fraction * float(np.prod(extent)), extent)


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
