"""What a run's pictures show: fields in space, time series, layout, log scales, marked levels.

Public API (NumPy only; nothing is drawn here):
    PicturePlan                                  the choices, as solver/viz/final_state.py and
                                                 solver/viz/plots.py draw them
    picture_plan(run, fields=None, log=()) -> PicturePlan
    grid_layout(shape) -> "profile" | "map" | "orthogonal"
    default_fields(run) -> list[str]
    default_series(run) -> list[str]
    run_config(run) -> dict                      the resolved config stored in the run file
    iso_level(values, fraction) -> float         a level inside the field's range
    centre_cell(values, level) -> (i, j, k)      the centre of the cells at or above a level

The run's config (``config_json`` in run.h5) says what to show in ``output.pictures``
(solver/config/sections.py PicturesConfig); whatever it leaves out is chosen here from the
model and the data, so the pictures show what the config is about:

* fields: the tumour field, then every species supplied from the vessel map ``w`` (its
  reaction names ``w``: immune cells recruited from the blood, drugs and oxygen entering from
  the vessels), except those zero at every record (the tissue level of an agent never given);
* levels: a diagnostic ``mean: heaviside(c - X)`` (the oxygen model's hypoxic and necrotic
  fractions) marks the region X < c on X's picture, named after the diagnostic;
* series: tumour burden, immune cells in the tumour, plasma levels of the agents given,
  tissue levels in the tumour, fractions; a series zero at every record is left out;
* layout: a profile over time on a 1-D grid (two dimensions of at most 4 cells), a heat map
  on a 2-D grid (a dimension of 1 cell), otherwise orthogonal slices and an isosurface.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from solver.io.run_file import RunData

__all__ = [
    "DEFAULT_SERIES_PATTERNS",
    "Level",
    "PicturePlan",
    "default_fields",
    "default_series",
    "grid_layout",
    "picture_plan",
    "run_config",
    "centre_cell",
    "iso_level",
]

Layout = Literal["profile", "map", "orthogonal"]

#: Series drawn when none are asked for, as name patterns in order.
DEFAULT_SERIES_PATTERNS: tuple[str, ...] = (
    "tumour_burden",
    "tumor_burden",
    "immune*",
    "*_in_tumour",
    "*_in_tumor",
    "plasma_*",
    "rate_*",
    "tissue_*",
    "*_tumour_mean",
    "*_tumor_mean",
    "*_fraction",
)
VESSEL_MAP = "w"
_THIN_CELLS = 4  # a dimension this thin carries no picture of its own
_HEAVISIDE_BELOW = re.compile(r"^\s*heaviside\(\s*([-+0-9.eE]+|[A-Za-z_]\w*)\s*-\s*([A-Za-z_]\w*)\s*\)\s*$")


@dataclass(frozen=True)
class Level:
    """A region ``field < value`` marked on that field's picture (e.g. hypoxic: O < 0.1)."""

    field: str
    value: float
    label: str


@dataclass(frozen=True)
class PicturePlan:
    """What the pictures of one run show.

    Attributes:
        fields: Species or maps drawn in space, in order (the tumour field first by default).
        series: Time series, one panel each.
        layout: ``profile`` (1-D), ``map`` (2-D) or ``orthogonal`` (3-D).
        log: Fields and series drawn on a log scale.
        clim: Colour limits per field (``view --clim``).
        levels: Regions marked on a field's picture.
        vessel_map: The map drawn as vessels on every picture of a field, or None.
        tumour_field: The field whose level set is the tumour boundary.
    """

    fields: tuple[str, ...]
    series: tuple[str, ...]
    layout: Layout
    log: frozenset[str] = frozenset()
    clim: dict[str, tuple[float, float]] = field(default_factory=dict)
    levels: tuple[Level, ...] = ()
    vessel_map: str | None = None
    tumour_field: str = "T"


def run_config(run: RunData) -> dict[str, Any]:
    """The resolved config stored with the run (``config_json``); {} when absent or unreadable."""
    raw = run.attrs.get("config_json")
    try:
        config = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _pictures_section(run: RunData) -> dict[str, Any]:
    pictures = run_config(run).get("output", {}).get("pictures")
    return pictures if isinstance(pictures, dict) else {}


def grid_layout(shape: Sequence[int]) -> Layout:
    """``profile`` when two dimensions are at most 4 cells, ``map`` when one is 1 cell, else
    ``orthogonal``."""
    if sum(1 for n in shape if n <= _THIN_CELLS) >= 2:
        return "profile"
    if any(n == 1 for n in shape):
        return "map"
    return "orthogonal"


def picture_plan(
    run: RunData,
    fields: Sequence[str] | None = None,
    *,
    log: Iterable[str] = (),
    clim: dict[str, tuple[float, float]] | None = None,
) -> PicturePlan:
    """The plan for ``run``: ``fields`` and ``log`` as given (e.g. by ``tumorsim view``), else
    the config's ``output.pictures``, else the defaults (module docstring).

    Raises:
        RunFileError: A field named in ``fields`` is not in the run.
    """
    section = _pictures_section(run)
    names = list(fields) if fields else list(section.get("fields") or default_fields(run))
    names = [run.check_field(n) for n in dict.fromkeys(names)]
    chosen = section.get("series")
    series = [n for n in chosen if n in run.series] if chosen else default_series(run)
    slices = section.get("slices", "auto")
    layout: Layout = slices if slices in ("profile", "map", "orthogonal") else grid_layout(run.grid_shape)
    return PicturePlan(
        fields=tuple(names),
        series=tuple(series),
        layout=layout,
        log=frozenset(section.get("log") or ()) | frozenset(log),
        clim=dict(clim or {}),
        levels=tuple(lv for lv in _levels(run) if lv.field in names),
        vessel_map=VESSEL_MAP if VESSEL_MAP in run.map_names else None,
        tumour_field=run.tumour_field,
    )


def default_fields(run: RunData) -> list[str]:
    """The tumour field, then the species supplied from the vessels that are not zero throughout.

    A run file without its model (no ``config_json``) shows every species.
    """
    species_config = run_config(run).get("model", {}).get("species")
    if not isinstance(species_config, dict):
        return [run.tumour_field, *(s for s in run.species if s != run.tumour_field)]
    vessels = re.compile(rf"\b{VESSEL_MAP}\b")
    chosen = [run.tumour_field]
    for name in run.species:
        reaction = str((species_config.get(name) or {}).get("reaction", ""))
        if name not in chosen and vessels.search(reaction) and not _zero_throughout(run, f"max_{name}"):
            chosen.append(name)
    return chosen


def default_series(run: RunData) -> list[str]:
    """Series matching DEFAULT_SERIES_PATTERNS in that order, without the plasma level (or
    infusion rate) of an agent never given and without series zero at every record; every
    series of the run when none match."""
    given = set(run.dose_times)
    chosen: list[str] = []
    for pattern in DEFAULT_SERIES_PATTERNS:
        for name in run.series:
            if not fnmatch.fnmatchcase(name, pattern) or name in chosen:
                continue
            agent = name.split("_", 1)[1] if name.startswith(("plasma_", "rate_")) else None
            if agent is not None and agent not in given:
                continue
            if _zero_throughout(run, name):
                continue
            chosen.append(name)
    return chosen or list(run.series)


def _zero_throughout(run: RunData, series: str) -> bool:
    values = run.series.get(series)
    if values is None or np.asarray(values).size == 0:
        return False
    values = np.asarray(values, dtype=float)
    return bool(np.all(values[np.isfinite(values)] == 0.0))


def _levels(run: RunData) -> list[Level]:
    """Regions the model's diagnostics count: ``mean: heaviside(c - X)`` marks X < c."""
    model = run_config(run).get("model", {})
    diagnostics, parameters = model.get("diagnostics"), model.get("parameters") or {}
    found: list[Level] = []
    for name, spec in (diagnostics or {}).items() if isinstance(diagnostics, dict) else ():
        match = _HEAVISIDE_BELOW.match(str((spec or {}).get("mean") or ""))
        if not match or match.group(2) not in run.species:
            continue
        try:  # the threshold is a number or a parameter's name
            value = float(parameters.get(match.group(1), match.group(1)))
        except (TypeError, ValueError):
            continue
        found.append(Level(match.group(2), value, name.removesuffix("_fraction").replace("_", " ")))
    return found


def iso_level(values: np.ndarray, fraction: float = 0.5) -> float:
    """The level ``fraction`` of the way from the finite minimum to the maximum of ``values``:
    always inside the field's range, so its contour exists whenever the field varies."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0
    low, high = float(finite.min()), float(finite.max())
    return low + fraction * (high - low)


def centre_cell(values: np.ndarray, level: float) -> tuple[int, int, int]:
    """Index of the cell nearest the centre of the cells where ``values`` reach ``level``
    (the middle of the grid when none do)."""
    inside = np.argwhere(values >= level)
    centre = inside.mean(axis=0) if inside.size else (np.asarray(values.shape) - 1) / 2
    return tuple(int(round(c)) for c in centre)  # type: ignore[return-value]
