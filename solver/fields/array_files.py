"""Arrays read from files for static maps and initial fields: .npy and HDF5.

Public API:
    read_array(path, shape, dataset=None, *, what="vessel map") -> ndarray (float64, as stored)
    check_values(array, label)          refuse non-finite and negative entries
    MAP_FILE_EXTENSIONS                 the extensions read_array reads

.npy files are read without pickles; an HDF5 file may hold one dataset (then its name
may be omitted) or several (then `dataset` names one). The shape and dtype a file declares
are checked before its values are read (a header may claim 1e15 cells), and an HDF5 file
that reaches outside itself (external links, external storage, virtual datasets:
solver/hdf5_safety.py) is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from solver.errors import ConfigError
from solver.hdf5_safety import outside_references

MAP_FILE_EXTENSIONS: tuple[str, ...] = (".npy", ".h5", ".hdf5")


def _folded(exc: BaseException) -> str:
    """An exception's message folded onto one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def read_array(
    path: str | Path,
    shape: Sequence[int],
    dataset: str | None = None,
    *,
    what: str = "vessel map",
) -> np.ndarray:
    """Read a static map from a .npy or HDF5 file and check it fits the grid.

    The values are returned as stored (converted to float64, not normalised; see
    solver.fields.vessels.normalise_map).

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
    grid_shape = tuple(int(n) for n in shape)
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
        array = _read_npy(file, label, grid_shape)
    else:
        array, label = _read_hdf5(file, dataset, label, grid_shape)
    array = np.ascontiguousarray(array, dtype=np.float64)
    check_values(array, label)
    return array


def check_values(array: np.ndarray, label: str) -> None:
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


def _check_declared(label: str, shape: tuple[int, ...], dtype: np.dtype, grid_shape: tuple[int, ...]) -> None:
    """Refuse, before reading any value, a dtype that is not real numbers or a shape not the grid's."""
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise ConfigError(f"{label} has dtype {dtype}; a real numeric array is required")
    if tuple(shape) != grid_shape:
        raise ConfigError(f"{label} has shape {tuple(shape)}; the grid is {grid_shape}")


def _read_npy(file: Path, label: str, grid_shape: tuple[int, ...]) -> np.ndarray:
    """Load a .npy array without pickles, once its header has declared the grid's shape."""
    try:
        with open(file, "rb") as fp:
            version = np.lib.format.read_magic(fp)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(fp)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        with open(file, "rb") as fp:
            zipped = fp.read(2) == b"PK"
        if zipped:
            raise ConfigError(f"{label} is not a single .npy array (it is a .npz archive)") from None
        raise ConfigError(f"{label} could not be read as a .npy array ({_folded(exc)})") from None
    _check_declared(label, shape, np.dtype(dtype), grid_shape)
    try:
        array = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ConfigError(f"{label} could not be read as a .npy array ({_folded(exc)})") from exc
    if not isinstance(array, np.ndarray):  # np.load returns an NpzFile for zip archives
        raise ConfigError(f"{label} is not a single .npy array (it is a .npz archive)")
    return array


def _read_hdf5(file: Path, dataset: str | None, label: str, grid_shape: tuple[int, ...]) -> tuple[np.ndarray, str]:
    """Read one dataset of an HDF5 file; returns it and a label naming the dataset."""
    try:
        import h5py
    except ImportError as exc:
        raise ConfigError(f"{label} is HDF5, which needs h5py (pip install h5py)") from exc
    try:
        handle = h5py.File(file, "r")
    except OSError as exc:
        raise ConfigError(f"{label} could not be opened as HDF5 ({_folded(exc)})") from exc
    with handle:
        outside = outside_references(handle)
        if outside is not None:
            raise ConfigError(f"{label} reaches outside itself ({outside}); tumorsim reads only "
                              "self-contained HDF5 files")
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
        ds = handle[key]
        _check_declared(f"{label} dataset '{key}'", ds.shape, ds.dtype, grid_shape)
        try:
            array = np.asarray(ds[()])
        except (OSError, RuntimeError) as exc:
            raise ConfigError(f"{label} dataset '{key}' could not be read ({_folded(exc)})") from None
    return array, f"{label} dataset '{key}'"


def _name_list(names: Sequence[str], limit: int = 20) -> str:
    """Comma-separated names, cut after ``limit`` with a count of the rest."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names) - limit} more)"
