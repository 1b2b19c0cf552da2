"""A run's snapshot as a pyvista.ImageData: the solver's cell centres as VTK points.

Public API:
    to_image_data(run, time="last", fields=None, include_maps=True) -> pyvista.ImageData

Grid convention: cell (i, j, k) holds the value at its centre ((i+1/2) hx, (j+1/2) hy,
(k+1/2) hz). to_image_data makes those centres the POINTS of a pyvista.ImageData (origin
(hx/2, hy/2, hz/2), spacing (hx, hy, hz), dimensions (nx, ny, nz)) and stores the values
as point data, so contours and slices interpolate the solver's own samples without a
cell-to-point averaging step. The XDMF sidecar uses the same convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from solver.io.run_file import RunData, TimeSpec
from solver.viz import import_optional

if TYPE_CHECKING:
    import pyvista


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
