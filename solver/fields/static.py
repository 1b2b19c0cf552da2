"""The static fields of a run, built once: maps (e.g. the vessel density w) and initial values.

Public API:
    StaticFields(maps, initial)                 maps float64 (n_maps, nx, ny, nz); initial in
                                                the run's dtype (n_species, nx, ny, nz)
        .maps_as(dtype) -> ndarray              the maps for the device (one map of zeros
                                                when the model has none: kernels take a pointer)
    build_static_fields(model, grid, dtype) -> StaticFields   refuses values the dtype cannot hold
                                                and negative initial values of nonnegative species
    check_fits_dtype(values, dtype, where)
    evaluate_source(source, grid, maps, where, base_dir, model, name=None) -> ndarray (float64)

A Simulation builds its StaticFields once and hands them to everything that needs them
(the run plan and stability bound, the integrator, the checkpoint's map hash, the
writer), so an expensive map (a vessel network at 256^3) is generated exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sympy as sp

from solver.config.sources import FileSource, RunSource, TumourSource, VesselSource
from solver.errors import ConfigError
from solver.fields.array_files import read_array
from solver.fields.run_snapshots import read_snapshot
from solver.fields.tumour_shapes import generate_tumour
from solver.fields.vessels import generate_vessels
from solver.grid import Grid
from solver.model import COORDS, Model, StaticSource


@dataclass(frozen=True)
class StaticFields:
    """What a run computes once before stepping: its maps and its initial fields."""

    maps: np.ndarray  # (n_maps, nx, ny, nz), float64, as evaluated
    initial: np.ndarray  # (n_species, nx, ny, nz), the run's dtype

    def maps_as(self, dtype: np.dtype | type) -> np.ndarray:
        """The maps in `dtype`; a single map of zeros when there is none (kernels take a pointer)."""
        if len(self.maps) == 0:
            return np.zeros((1,) + self.maps.shape[1:], dtype)
        return self.maps.astype(dtype)


def build_static_fields(model: Model, grid: Grid, dtype: np.dtype | type) -> StaticFields:
    """Evaluate every map once (float64), then every species' initial field (which may
    use the maps), cast to `dtype`."""
    maps = np.empty((len(model.maps),) + grid.shape, dtype=np.float64)
    for i, (name, spec) in enumerate(model.maps.items()):
        maps[i] = evaluate_source(spec, grid, None, f"model.maps.{name}", model.base_dir, model)
        check_fits_dtype(maps[i], dtype, f"model.maps.{name}")
    initial = np.empty((len(model.species),) + grid.shape, dtype=dtype)
    for i, s in enumerate(model.species):
        where = f"model.species.{s.name}.initial"
        values = evaluate_source(s.initial, grid, maps, where, model.base_dir, model, name=s.name)
        check_fits_dtype(values, dtype, where)
        if s.nonnegative and values.min() < 0:
            cell = tuple(int(c) for c in np.unravel_index(int(np.argmin(values)), values.shape))
            raise ConfigError(f"{where}: value {values[cell]:.6g} at cell {cell} is negative; species {s.name} "
                              "is nonnegative (nonnegative: false allows negative values)")
        initial[i] = values
    return StaticFields(maps, initial)


def check_fits_dtype(values: np.ndarray, dtype: np.dtype | type, where: str) -> None:
    """Refuse finite float64 values that the run's dtype cannot hold (1e39 in float32 is inf)."""
    largest = float(np.finfo(dtype).max)
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    if peak > largest:
        cell = tuple(int(c) for c in np.unravel_index(int(np.argmax(np.abs(values))), values.shape))
        raise ConfigError(f"{where}: value {values[cell]:.6g} at cell {cell} overflows {np.dtype(dtype)} (largest "
                          f"{largest:.3g}); use precision: float64, or units that make it smaller")


def evaluate_source(
    spec: StaticSource, grid: Grid, maps: np.ndarray | None, where: str, base_dir: Path, model: Model,
    name: str | None = None,
) -> np.ndarray:
    """One static field on the grid, float64: a file, a generated vessel map or tumour, a
    snapshot of another run (initial fields of species `name` only), or an expression of
    x, y, z (and, for initial fields, of the maps)."""
    if isinstance(spec, FileSource):
        path = Path(spec.file).expanduser()
        return read_array(path if path.is_absolute() else base_dir / path, grid.shape, spec.dataset, what=where)
    if isinstance(spec, RunSource):
        if name is None:
            raise ConfigError(f"{where}: {{run: ...}} gives a species its initial field from another run; a map "
                              "cannot come from one (use {file: DIR/run.h5, dataset: maps/NAME})")
        path = Path(spec.run).expanduser()
        return read_snapshot(path if path.is_absolute() else base_dir / path, spec.field or name, spec.time,
                             grid.shape, what=where)
    if isinstance(spec, VesselSource):
        return generate_vessels(grid, spec.vessels, base_dir)
    if isinstance(spec, TumourSource):
        return generate_tumour(grid, spec.tumour)
    coords = grid.coordinates()
    values = {str(c): coords[str(c)] for c in COORDS}
    if maps is not None:
        values.update({name: maps[i] for i, name in enumerate(model.map_names)})
    symbols = sorted(spec.free_symbols, key=str)
    fn = sp.lambdify(symbols, spec, modules="numpy")
    with np.errstate(all="ignore"):  # a non-finite value is reported below, naming the cell
        result = np.broadcast_to(np.asarray(fn(*(values[str(s)] for s in symbols)), dtype=np.float64), grid.shape)
    if not np.all(np.isfinite(result)):
        cell = tuple(int(c) for c in np.argwhere(~np.isfinite(result))[0])
        raise ConfigError(f"{where}: the expression gives {result[cell]} at cell {cell} (x, y, z = "
                          f"{', '.join(f'{float(grid.centres(a).reshape(-1)[cell[a]]):.6g}' for a in range(3))})")
    return result
