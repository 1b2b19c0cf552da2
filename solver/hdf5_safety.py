"""HDF5 files read from outside: everything they hold must lie inside them.

Public API:
    outside_references(h5file) -> str | None    why the file reaches outside itself, or None

HDF5 lets a file point elsewhere: an external link opens another file, a dataset with
external storage reads its values from any named file (e.g. /etc/hostname), and a virtual
dataset maps other files' datasets. A map or initial field read through one of them would
copy that file into run.h5 and every checkpoint, and the config would look harmless. So
tumorsim reads an HDF5 input (and resumes run.h5 or a checkpoint) only when none of the
three occurs anywhere in the file.

A leaf module (h5py is imported by the caller, who opened the file).
"""

from __future__ import annotations

from typing import Any


def outside_references(h5file: Any) -> str | None:
    """The first link or dataset of an open h5py file that reaches outside it, described
    ("/a is an external link to other.h5:/b"), or None when the file is self-contained."""
    import h5py

    found: list[str] = []

    def visit_link(name: str, link: Any) -> Any:
        if isinstance(link, h5py.ExternalLink):
            found.append(f"/{name} is an external link to {link.filename}:{link.path}")
            return True
        return None

    def visit_object(name: str, obj: Any) -> Any:
        if isinstance(obj, h5py.Dataset):
            if obj.is_virtual:
                found.append(f"/{name} is a virtual dataset (it maps other files)")
                return True
            if obj.id.get_create_plist().get_external_count() > 0:
                found.append(f"/{name} keeps its values in external files")
                return True
        return None

    h5file.visititems_links(visit_link)
    if not found:
        h5file.visititems(visit_object)
    return found[0] if found else None
