"""Exporting a run for other tools: its time series as CSV, its snapshots as VTK ImageData.

Public API:
    export_run(run_path, csv, vti, overwrite=False) -> list[str]   the `tumorsim export` command
    export_csv(run, path, overwrite=False) -> Path
        one row per record time, one column per series, each header "name [unit]"
    export_vti(run, folder, overwrite=False) -> list[Path]
        DIR/snapshot_<i>.vti per snapshot and DIR/run.pvd (the time series, for ParaView)
    check_csv_target(path, overwrite), check_vti_target(folder, overwrite)
        refuse a bad path before anything is written (ConfigError)

The .vti files follow the package's grid convention (solver/viz/image_data.py, the XDMF
sidecar): the solver's cell centres are the VTK points, origin (hx/2, hy/2, hz/2), spacing
(hx, hy, hz), one point-data array per species and static map. VTK orders points with x
fastest, so each array is written as field.ravel(order="F"): VTK's X, Y, Z are the
solver's x, y, z. The writer is plain XML with raw base64 data (VTK's "binary" inline
format, one UInt64 byte count before the values), so exporting needs no VTK install.
"""

from __future__ import annotations

import base64
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from solver.errors import ConfigError, RunFileError
from solver.io.run_file import RunData, load_run
from solver.io.safe_files import write_file

_VTK_TYPES = {np.dtype("float32"): "Float32", np.dtype("float64"): "Float64"}


def _number(value: float) -> str:
    """A value as the shortest text that reads back to the same float64."""
    return repr(float(value)) if math.isfinite(value) else ("nan" if math.isnan(value) else
                                                           ("inf" if value > 0 else "-inf"))


def export_run(run_path: str, csv: str | None, vti: str | None, overwrite: bool = False) -> list[str]:
    """`tumorsim export`: both paths checked before anything is written; the lines to print.

    Raises:
        ConfigError: nothing asked, a bad path, or a RUN that is not a run (bad input: exit 2).
    """
    if not csv and not vti:
        raise ConfigError("export needs --csv FILE (the time series) and/or --vti DIR (the snapshots)")
    if csv:
        check_csv_target(csv, overwrite)
    if vti:
        check_vti_target(vti, overwrite)
    try:
        run = load_run(run_path)
    except RunFileError as exc:  # a bad RUN path is bad input like the others
        raise ConfigError(str(exc)) from None
    lines = []
    if csv:
        path = export_csv(run, csv, overwrite)
        lines.append(f"csv: {path} ({run.series_time.size} records, {len(run.series)} series)")
    if vti:
        written = export_vti(run, vti, overwrite)
        lines.append(f"vti: {len(written)} snapshots in {vti} (run.pvd lists them with their times)")
    return lines


def check_csv_target(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """The CSV file to write, refused when it cannot be written as asked.

    Raises:
        ConfigError: the path is a folder, its folder does not exist, or the file exists
            (without overwrite).
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--csv {str(path)!r} is a folder; give a file name such as series.csv")
    if not path.parent.is_dir():
        raise ConfigError(f"--csv {str(path)!r}: folder {str(path.parent)!r} does not exist")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise ConfigError(f"--csv {str(path)!r} exists; choose another file or pass --overwrite")
    return path


def check_vti_target(folder: str | os.PathLike[str], overwrite: bool) -> Path:
    """The folder for the .vti files (created by export_vti when missing), refused when a
    file is in the way or it already holds an export (without overwrite).

    Raises:
        ConfigError: see above.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--vti {str(folder)!r} exists and is not a folder")
    if not folder.parent.is_dir():
        raise ConfigError(f"--vti {str(folder)!r}: folder {str(folder.parent)!r} does not exist")
    if folder.is_dir() and not overwrite:
        existing = sorted(p.name for p in folder.iterdir() if p.name == "run.pvd" or
                          (p.name.startswith("snapshot_") and p.suffix == ".vti"))
        if existing:
            raise ConfigError(f"--vti {str(folder)!r} already holds an export ({existing[0]}); choose another "
                              "folder or pass --overwrite")
    return folder


def export_csv(run: RunData, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """The run's time series as CSV: a `time [unit]` column, then every series in the
    file's order, each header with its unit in brackets where run.h5 records one."""
    path = check_csv_target(path, overwrite)
    names = list(run.series)
    headers = [_header("time", run.time_unit), *(_header(n, run.series_units.get(n, "")) for n in names)]
    lines = [",".join(_csv_field(h) for h in headers)]
    columns = [run.series_time, *(run.series[n] for n in names)]
    for row in zip(*columns):
        lines.append(",".join(_number(v) for v in row))
    write_file(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return path


def _header(name: str, unit: str) -> str:
    return f"{name} [{unit}]" if unit else name


def _csv_field(text: str) -> str:
    """A header quoted as CSV needs it (a unit may hold a comma)."""
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def export_vti(run: RunData, folder: str | os.PathLike[str], overwrite: bool = False) -> list[Path]:
    """Every snapshot as DIR/snapshot_<index>.vti and a DIR/run.pvd collection with their times."""
    folder = check_vti_target(folder, overwrite)
    folder.mkdir(exist_ok=True)
    maps = {name: run.map(name) for name in run.map_names}
    written = []
    for index in range(run.n_snapshots):
        arrays = {name: run.field(name, index) for name in run.species}
        arrays.update(maps)
        path = folder / f"snapshot_{index:05d}.vti"
        write_file(path, image_data_xml(arrays, run.spacing, float(run.times[index])))
        written.append(path)
    collection = ET.Element("VTKFile", type="Collection", version="1.0", byte_order="LittleEndian")
    datasets = ET.SubElement(collection, "Collection")
    for index, path in enumerate(written):
        ET.SubElement(datasets, "DataSet", timestep=_number(run.times[index]), part="0", file=path.name)
    ET.indent(collection, space="  ")
    write_file(folder / "run.pvd", ('<?xml version="1.0"?>\n' + ET.tostring(collection, encoding="unicode")
                                    + "\n").encode("utf-8"))
    return written


def image_data_xml(arrays: dict[str, np.ndarray], spacing: tuple[float, float, float], time: float) -> bytes:
    """One VTK XML ImageData file: every (nx, ny, nz) array as point data at the cell centres."""
    shape = next(iter(arrays.values())).shape
    extent = " ".join(f"0 {n - 1}" for n in shape)
    root = ET.Element("VTKFile", type="ImageData", version="1.0", byte_order="LittleEndian",
                      header_type="UInt64")
    image = ET.SubElement(root, "ImageData", WholeExtent=extent, Origin=" ".join(_number(h / 2) for h in spacing),
                          Spacing=" ".join(_number(h) for h in spacing))
    field_data = ET.SubElement(image, "FieldData")
    _data_array(field_data, "time", np.array([time], dtype=np.float64), NumberOfTuples="1")
    piece = ET.SubElement(image, "Piece", Extent=extent)
    points = ET.SubElement(piece, "PointData")
    for name, array in arrays.items():
        if array.shape != shape:
            raise ValueError(f"array {name!r} of shape {array.shape} on a grid of shape {shape}")
        _data_array(points, name, np.asarray(array).ravel(order="F"))  # x fastest, as VTK orders points
    ET.SubElement(piece, "CellData")
    ET.indent(root, space="  ")
    return ('<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode") + "\n").encode("utf-8")


def _data_array(parent: ET.Element, name: str, values: np.ndarray, **extra: str) -> None:
    dtype = values.dtype if values.dtype in _VTK_TYPES else np.dtype("float64")
    raw = np.ascontiguousarray(values, dtype=dtype.newbyteorder("<")).tobytes()
    item = ET.SubElement(parent, "DataArray", type=_VTK_TYPES[dtype], Name=name, format="binary", **extra)
    # VTK's inline binary: base64 of the byte count (header_type UInt64) followed by the bytes
    item.text = base64.b64encode(np.uint64(len(raw)).astype("<u8").tobytes() + raw).decode("ascii")
