"""Static vessel maps w(x): where blood supplies drug, oxygen and immune cells to tissue.

Public API:
    vessel_map(shape, spacing, kind="network", seed=0, **options) -> ndarray (float64, mean 1)
    generate_vessels(grid, options, base_dir=".") -> ndarray   from validated options
    normalise_map(w, what="vessel map") -> ndarray (float64, mean 1)
    core_mask(r, core_radius, rim_width) -> ndarray              the smooth 0 -> 1 core mask

The map enters the vascular supply terms, P_i (S/V) w(x) (X_p(t) - u_i), and the
immune infiltration rate, rate * w(x) * C(t) (docs/model.md). It is a *relative* local
vessel density: non-negative and normalised to mean 1 over the grid, so that the
parameter S/V keeps its meaning of the domain-averaged vessel surface per tissue volume
(40-200 cm^-1 in tissue).

Grid convention: arrays of shape (nx, ny, nz) in C order, cell-centred; cell (i, j, k)
has centre ((i + 0.5) hx, (j + 0.5) hy, (k + 0.5) hz) and the domain is
[0, nx hx] x [0, ny hy] x [0, nz hz]. Lengths in the options are in the unit of the
spacing (the defaults assume micrometres). The options, their defaults and ranges are
the typed models of solver/config/sources.py (UniformVessels, NetworkVessels,
NecroticCoreVessels, FileVessels).

Kinds:
    "uniform":       w = 1 everywhere (well-perfused tissue; the ODE limit).
    "network":       a random network of gently curving capillary tubes: vessels are
                     polylines of `pieces` straight pieces with a random turn of scale
                     `tortuosity` between them, rasterised with the smooth wall profile
                     1/2 (1 - tanh((d - r) / edge)) (d the distance to the axis), added
                     until the tube volume fraction (cells within the drawn radius of an
                     axis) reaches `volume_fraction`. The drawn radius is
                     max(radius, min_radius_cells * max(spacing)) so tubes are resolved.
    "necrotic_core": the network multiplied by a smooth mask that is 0 inside a sphere
                     (avascular core; 1/2 at core_radius, a C2 ramp of width rim_width),
                     optionally denser in a shell around it (angiogenic rim): the
                     fraction there is raised to (1 + rim_boost) * volume_fraction.
    "file":          a map read from .npy or .h5 (solver/fields/array_files.py),
                     normalised to mean 1.
"""

from __future__ import annotations

import logging
import math
import time
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

log = logging.getLogger(__name__)

# Tube profile 1/2 (1 - tanh((d - r)/edge)) is cut off beyond d = r + _CUTOFF_EDGES * edge,
# where it is below 1.2e-7 of its peak.
_CUTOFF_EDGES = 8.0


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
    rng = np.random.default_rng(options.seed)
    tubes = _TubeParams.from_options(options, grid)
    raw = np.zeros(grid.shape, dtype=np.float64)
    _grow_network(raw, grid, rng, tubes, tubes.volume_fraction)
    if isinstance(options, NecroticCoreVessels):
        _apply_necrotic_core(raw, grid, rng, tubes, options)
    log.debug("vessel map %s on %s built in %.3f s", options.kind, grid.shape, time.perf_counter() - started)
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
    def from_options(cls, opts: NetworkVessels, grid: Grid) -> _TubeParams:
        """Resolve the grid-dependent defaults of validated network options."""
        drawn = max(opts.radius, opts.min_radius_cells * grid.h_max)
        if drawn > opts.radius:
            log.info(
                "vessel radius %g raised to %g (min_radius_cells=%g x largest spacing %g) "
                "so that tubes are resolved on the grid",
                opts.radius,
                drawn,
                opts.min_radius_cells,
                grid.h_max,
            )
        smallest = float(min(grid.extent))
        if drawn > 0.25 * smallest:
            raise ConfigError(
                f"vessel radius {drawn:g} exceeds a quarter of the smallest domain extent "
                f"{smallest:g}; radius is in the length unit of spacing "
                "(e.g. radius 5 with spacing in um)"
            )
        edge = grid.h_max if opts.edge is None else opts.edge
        length = 20.0 * drawn if opts.segment_length is None else opts.segment_length
        return cls(opts.volume_fraction, drawn, edge, length, opts.pieces, opts.tortuosity)


def _grow_network(
    raw: np.ndarray,
    grid: Grid,
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
    log.debug(
        "vessel network: %d pieces, tube volume fraction %.4f (target %.4f)",
        drawn,
        covered / region_cells,
        target,
    )


def _random_start(grid: Grid, rng: np.random.Generator, starts: np.ndarray | None) -> np.ndarray:
    """A start point uniform in the domain, or uniform in a random cell of ``starts``."""
    extent = np.array(grid.extent)
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
    grid: Grid,
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
    grid: Grid,
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
    grid: Grid,
    rng: np.random.Generator,
    tubes: _TubeParams,
    opts: NecroticCoreVessels,
) -> None:
    """Optionally densify the angiogenic rim, then multiply by the core mask (in place)."""
    centre = grid.centre if opts.centre is None else np.array(opts.centre, dtype=np.float64)
    smallest = float(min(grid.extent))
    core_radius = 0.25 * smallest if opts.core_radius is None else opts.core_radius
    rim_width = 2.0 * grid.h_max if opts.rim_width is None else opts.rim_width
    if rim_width < grid.h_max:
        log.warning(
            "rim_width %g is below the largest grid spacing %g: the core edge is a jump",
            rim_width,
            grid.h_max,
        )
    boost_width = 0.5 * core_radius if opts.boost_width is None else opts.boost_width
    dx, dy, dz = grid.offsets(centre)
    r = np.sqrt(dx * dx + dy * dy + dz * dz)
    outer = core_radius + 0.5 * rim_width
    if opts.rim_boost > 0.0:
        shell = (r >= outer) & (r <= outer + boost_width)
        if not shell.any():
            raise ConfigError(
                f"the angiogenic rim {outer:g} <= r <= {outer + boost_width:g} around "
                f"{tuple(centre)} holds no cell centre; widen boost_width or move the core"
            )
        _grow_network(raw, grid, rng, tubes, (1.0 + opts.rim_boost) * tubes.volume_fraction, shell)
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
