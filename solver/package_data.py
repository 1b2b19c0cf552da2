"""Locate the data folders that ship with the package: kernels/ and configs/.

In a wheel they are installed inside the package (solver/kernels, solver/configs,
through the package-dir mapping in pyproject.toml); in a source checkout or an
editable install they are the top-level folders of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The folder `name` ("kernels" or "configs"), installed or in the checkout."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"tumorsim data folder {name!r} is missing from the installation")
