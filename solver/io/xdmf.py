"""XDMF sidecar for a run's HDF5 file, so ParaView (and VisIt) open the time series directly.

Public API:
    write_xdmf(h5_path, xdmf_path=None) -> Path
    RunFileError                          the run file is missing or not in tumorsim's layout

The sidecar is XDMF 3 XML (https://www.xdmf.org/index.php/XDMF_Model_and_Format) that
points into the HDF5 file; it copies no data. Its shape:

    Domain
      Grid  GridType="Collection" CollectionType="Temporal"
        Grid  GridType="Uniform"           one per snapshot, <Time Value="t"/>
          Topology  3DCoRectMesh, Dimensions "nx ny nz"
          Geometry  ORIGIN_DXDYDZ, origin (hx/2, hy/2, hz/2), spacing (hx, hy, hz)
          Attribute per species, Center="Node": a HyperSlab of /fields/<species>
                    selecting snapshot i, i.e. start (i,0,0,0), stride 1, count (1,nx,ny,nz)
          Attribute per static map, Center="Node": /maps/<name> whole

Values are placed at the cell centres, as points (Center="Node"), the same convention as
``solver.viz.image_data.to_image_data``: cell (i, j, k) of the solver is the point
((i + 1/2) hx, (j + 1/2) hy, (k + 1/2) hz). The outermost half cell of the domain is
therefore outside the drawn box.

Axis order: XDMF lists Dimensions slowest axis first and reads an array with its LAST
index varying fastest, calling that axis X; VTK's reader (ParaView's) reads the Origin and
Spacing of ORIGIN_DXDYDZ in that same slowest-first order (checked with VTK's reader in
tests/test_xdmf.py). The run file stores (x, y, z) in C order, so its fastest index is the
solver's z, and the sidecar lists Dimensions, Origin and Spacing in the file's order
(x, y, z). Readers therefore show the solver's z along their X axis and the solver's x
along their Z axis: the mesh is the transpose of the solver's, with distances and values
exact. No ordering of Dimensions, Origin or Spacing can change that: a structured mesh's
X is its array's fastest index, and XDMF has no way to transpose an HDF5 dataset without a
copy ("nz ny nx" would describe the values in the wrong order). For the solver's own axes
in ParaView, `tumorsim export RUN --vti DIR` writes each snapshot with x fastest.

The file is written to a temporary name in the same folder and renamed into place, so a
reader never sees half a sidecar.
"""

from __future__ import annotations

import logging
import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from solver.errors import RunFileError
from solver.io.run_file import RunLayout, open_run_file, read_layout

log = logging.getLogger(__name__)

__all__ = ["RunFileError", "write_xdmf"]

XDMF_VERSION = "3.0"


def write_xdmf(
    h5_path: str | os.PathLike[str] | Any, xdmf_path: str | os.PathLike[str] | None = None
) -> Path:
    """Write (or rewrite) the XDMF sidecar describing every snapshot of a run's HDF5 file.

    Safe to call after each snapshot: the sidecar is rebuilt from what the file holds now.

    Args:
        h5_path: The run's HDF5 file (``/fields/time``, ``/fields/<species>``, ``/maps/<name>``),
            or that file already open as an ``h5py.File`` (e.g. the writer's own handle,
            mid-run); an open file is read, not closed.
        xdmf_path: Where to write; defaults to the HDF5 path with the suffix ``.xdmf``. The
            HDF5 file is referenced by a path relative to this file's folder when it lies
            below it, else by its absolute path.

    Returns:
        The path of the sidecar written.

    Raises:
        RunFileError: The HDF5 file is missing or not in the run-file layout.
    """
    if hasattr(h5_path, "attrs") and hasattr(h5_path, "filename"):
        open_file: Any = h5_path
        h5_path = Path(open_file.filename)
        layout = read_layout(open_file, h5_path)
    else:
        h5_path = Path(h5_path)
        layout = _read_layout(h5_path)
    out = Path(xdmf_path) if xdmf_path is not None else h5_path.with_suffix(".xdmf")
    h5_ref = _relative_reference(h5_path, out.parent)
    root = _build_tree(layout, h5_ref)
    ET.indent(root, space="  ")
    text = '<?xml version="1.0" ?>\n' + ET.tostring(root, encoding="unicode") + "\n"
    _write_atomically(out, text)
    log.info("wrote XDMF sidecar %s (%d snapshots, %d fields, %d maps)", out, len(layout.times),
             len(layout.fields), len(layout.maps))
    return out


def _read_layout(h5_path: Path) -> RunLayout:
    """The layout of a run file on disk (solver/io/run_file.py reads it)."""
    with open_run_file(h5_path) as fh:
        return read_layout(fh, h5_path)


def _number_type(dtype: np.dtype) -> tuple[str, int] | None:
    """XDMF NumberType and Precision for a NumPy dtype, or None if XDMF cannot describe it."""
    kinds = {"f": "Float", "i": "Int", "u": "UInt"}
    kind = kinds.get(np.dtype(dtype).kind)
    if kind is None:
        return None
    if kind == "UInt" and dtype.itemsize == 1:
        return "UChar", 1
    if kind == "Int" and dtype.itemsize == 1:
        return "Char", 1
    return kind, int(dtype.itemsize)


def _dims(shape: tuple[int, ...]) -> str:
    return " ".join(str(int(s)) for s in shape)


def _floats(values: tuple[float, ...] | list[float]) -> str:
    return " ".join(repr(float(v)) for v in values)


def _build_tree(layout: RunLayout, h5_ref: str) -> ET.Element:
    """The XDMF element tree: a temporal collection of one uniform grid per snapshot."""
    root = ET.Element("Xdmf", Version=XDMF_VERSION)
    domain = ET.SubElement(root, "Domain")
    series = ET.SubElement(
        domain, "Grid", Name=layout.name, GridType="Collection", CollectionType="Temporal"
    )
    grid_shape: tuple[int, int, int] = layout.grid_shape
    spacing: tuple[float, float, float] = layout.spacing
    origin = tuple(h / 2.0 for h in spacing)
    for index, t in enumerate(layout.times):
        grid = ET.SubElement(series, "Grid", Name=f"snapshot_{index:05d}", GridType="Uniform")
        ET.SubElement(grid, "Time", Value=repr(float(t)))
        ET.SubElement(grid, "Topology", TopologyType="3DCoRectMesh", Dimensions=_dims(grid_shape))
        geometry = ET.SubElement(grid, "Geometry", GeometryType="ORIGIN_DXDYDZ")
        for values in (origin, spacing):
            item = ET.SubElement(
                geometry,
                "DataItem",
                Dimensions="3",
                NumberType="Float",
                Precision="8",
                Format="XML",
            )
            item.text = _floats(values)
        for name, (shape, dtype) in layout.fields.items():
            _add_snapshot_attribute(grid, name, shape, dtype, index, h5_ref)
        for name, (shape, dtype) in layout.maps.items():
            _add_map_attribute(grid, name, shape, dtype, h5_ref)
    return root


def _add_snapshot_attribute(
    grid: ET.Element, name: str, shape: tuple[int, ...], dtype: np.dtype, index: int, h5_ref: str
) -> None:
    """An Attribute reading snapshot ``index`` of ``/fields/<name>`` through a HyperSlab."""
    number = _number_type(dtype)
    if number is None:
        log.warning("XDMF cannot describe /fields/%s of dtype %s; left out", name, dtype)
        return
    grid_shape = shape[1:]
    attribute = ET.SubElement(grid, "Attribute", Name=name, AttributeType="Scalar", Center="Node")
    slab = ET.SubElement(
        attribute, "DataItem", ItemType="HyperSlab", Dimensions=_dims(grid_shape), Type="HyperSlab"
    )
    selection = ET.SubElement(slab, "DataItem", Dimensions="3 4", NumberType="Int", Format="XML")
    start = (index, 0, 0, 0)
    stride = (1, 1, 1, 1)
    count = (1, *grid_shape)
    selection.text = " ".join(_dims(row) for row in (start, stride, count))
    source = ET.SubElement(
        slab,
        "DataItem",
        Dimensions=_dims(shape),
        NumberType=number[0],
        Precision=str(number[1]),
        Format="HDF",
    )
    source.text = f"{h5_ref}:/fields/{name}"


def _add_map_attribute(
    grid: ET.Element, name: str, shape: tuple[int, ...], dtype: np.dtype, h5_ref: str
) -> None:
    """An Attribute reading the static map ``/maps/<name>`` whole."""
    number = _number_type(dtype)
    if number is None:
        log.warning("XDMF cannot describe /maps/%s of dtype %s; left out", name, dtype)
        return
    attribute = ET.SubElement(grid, "Attribute", Name=name, AttributeType="Scalar", Center="Node")
    item = ET.SubElement(
        attribute,
        "DataItem",
        Dimensions=_dims(shape),
        NumberType=number[0],
        Precision=str(number[1]),
        Format="HDF",
    )
    item.text = f"{h5_ref}:/maps/{name}"


def _relative_reference(h5_path: Path, folder: Path) -> str:
    """How the sidecar in ``folder`` names the HDF5 file: relative when below it, else absolute."""
    h5_abs = h5_path.resolve()
    try:
        return h5_abs.relative_to(folder.resolve()).as_posix()
    except ValueError:
        return h5_abs.as_posix()


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
