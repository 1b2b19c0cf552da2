"""Boundary conditions as written in a config, normalised to one face per side of each axis.

Public API:
    normalise_boundary(spec) -> {axis: {"low": face, "high": face}}
    FACE_KINDS

A face is "no-flux", "periodic", {value: g} or {permeable: {permeability: P, value: g}};
the normalised face is {"kind": ..., "value": ..., "permeability": ...} as
solver.grid.BoundaryConditions.from_config reads it.
"""

from __future__ import annotations

import math
from typing import Any

from solver.config.types import KeyedValueError

AXES = ("x", "y", "z")
FACE_KINDS = ("no-flux", "periodic", "value", "permeable")
_PERMEABLE_FORM = "{permeable: {permeability: NUMBER >= 0, value: NUMBER}}"
FACES_ALLOWED = "no-flux, periodic, {value: NUMBER}, " + _PERMEABLE_FORM


def _face(value: Any, where: str) -> dict[str, Any]:
    """One face as {"kind": ...} (plus "value" for a fixed-value face, "value" and
    "permeability" for a permeable one)."""
    if isinstance(value, str):
        kind = value.strip().lower().replace("_", "-")
        if kind in ("no-flux", "periodic"):
            return {"kind": kind}
        raise KeyedValueError(where, f"unknown boundary {value!r}; allowed: {FACES_ALLOWED}")
    if isinstance(value, dict) and "kind" in value:  # the normalised form, read back
        kind = value["kind"]
        if kind == "value" and set(value) == {"kind", "value"}:
            return _face({"value": value["value"]}, where)
        if kind == "permeable" and set(value) == {"kind", "value", "permeability"}:
            return _face({"permeable": {k: value[k] for k in ("permeability", "value")}}, where)
        if kind in ("no-flux", "periodic") and set(value) == {"kind"}:
            return {"kind": kind}
        raise KeyedValueError(where, f"unknown boundary {value!r}; allowed: {FACES_ALLOWED}")
    if isinstance(value, dict) and "permeable" in value:
        return _permeable_face(value, where)
    if isinstance(value, dict):
        if set(value) != {"value"}:
            raise KeyedValueError(
                where, f"a fixed-value face is written {{value: NUMBER}}, got {value!r}"
            )
        v = value["value"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise KeyedValueError(where, f"a fixed value must be a finite number, got {v!r}")
        return {"kind": "value", "value": float(v)}
    raise KeyedValueError(where, f"unknown boundary {value!r}; allowed: {FACES_ALLOWED}")


def _permeable_face(value: dict[str, Any], where: str) -> dict[str, Any]:
    """{permeable: {permeability: P, value: g}} -> {"kind": "permeable", "value": g, "permeability": P}.

    Exchange with an outside reservoir at concentration g through a wall of permeability
    P (length / time, in the grid's length unit and the model's time unit): inward flux
    P (g - u_face). P = 0 is allowed and is exactly no-flux.
    """
    spec = value["permeable"]
    if set(value) != {"permeable"} or not isinstance(spec, dict) or set(spec) != {"permeability", "value"}:
        raise KeyedValueError(where, f"a permeable face is written {_PERMEABLE_FORM}, got {value!r}")
    p, g = spec["permeability"], spec["value"]
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or p < 0:
        raise KeyedValueError(where, f"a permeability must be a finite number >= 0, got {p!r}")
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g):
        raise KeyedValueError(where, f"a permeable face's outside value must be a finite number, got {g!r}")
    return {"kind": "permeable", "value": float(g), "permeability": float(p)}


def _is_face(value: Any) -> bool:
    return not isinstance(value, dict) or "value" in value or "kind" in value or "permeable" in value


def normalise_boundary(spec: Any) -> dict[str, dict[str, Any]]:
    """Expand a boundary spec to {axis: {"low": face, "high": face}} for x, y and z.

    Accepted forms: one face for all six ("no-flux"); a mapping axis -> face; or
    axis -> {low: face, high: face}. A face is "no-flux", "periodic", {value: NUMBER} or
    {permeable: {permeability: P, value: g}} (the normalised {kind: ..., value: ...,
    permeability: ...} form is read back as well).
    Axes and sides left out are no-flux. Periodic must be on both faces of an axis.
    """
    if _is_face(spec):
        face = _face(spec, "")
        out = {a: {"low": face, "high": face} for a in AXES}
    else:
        unknown = [k for k in spec if k not in AXES]
        if unknown:
            raise ValueError(
                f"unknown key {unknown[0]!r}; valid keys: x, y, z (or one face for all: {FACES_ALLOWED})"
            )
        out = {}
        for axis in AXES:
            v = spec.get(axis, "no-flux")
            if _is_face(v):
                face = _face(v, axis)
                out[axis] = {"low": face, "high": face}
                continue
            extra = [k for k in v if k not in ("low", "high")]
            if extra:
                raise KeyedValueError(axis, f"unknown key {extra[0]!r}; valid keys: low, high")
            out[axis] = {
                side: _face(v.get(side, "no-flux"), f"{axis}.{side}") for side in ("low", "high")
            }
    for axis, faces in out.items():
        low, high = faces["low"]["kind"], faces["high"]["kind"]
        if (low == "periodic") != (high == "periodic"):
            raise KeyedValueError(
                axis,
                f"periodic on one face only (low: {low}, high: {high}); "
                "periodic must be set on both faces of an axis",
            )
    return out
