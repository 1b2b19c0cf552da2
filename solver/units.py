"""Physical units: what a model's numbers mean, and a model converted into a config's
units of time and length (pint parses and converts; imported only when a run is built).

Public API:
    registry() -> pint.UnitRegistry        with `cell` and `IU` defined (counts)
    check_unit(text, kind, where) -> str   a unit of time or length, or ConfigError
    UnitConversion(time_from, time_to, length_from, length_to)
        .value(number, units, where) -> float   a parameter in the config's units
        .label(text) -> str                      a unit label in the config's units
        .identity                                nothing to convert
    length_in(value, unit, to) -> float | None   a length in another unit
    integral_unit(units, length_unit) -> (factor, label)
        the unit of a density's integral over the grid (cells/mL x um^3 -> cells, 1e-12)

A built-in model declares `units: {time, length, parameters: {name: unit}}`; every
parameter value is in those units. A config's `time.unit` and `grid.length_unit` are the
units of the config's own numbers (end, dt, record intervals, dose times and rates, the
spacing, shapes and vessel sizes); the model is converted into them, so a run in hours
and millimetres is the same run as one in days and micrometres (tests/test_units.py).
Only the model's time and length units are replaced: a density per mL stays per mL.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any

from solver.errors import ConfigError
from solver.text import shown

# the unit kinds a config names, with examples for the error message
_KINDS = {"time": ("[time]", "s, min, h, day, week"), "length": ("[length]", "nm, um, mm, cm, m")}
_TOKEN = re.compile(r"[A-Za-zµμ_][A-Za-z0-9µμ_]*")
# The common case without pint (importing it costs most of a second): an amount per one of
# these volumes on a grid in one of these lengths (tests/test_units.py checks it against pint).
_LENGTH_CM = {"nm": 1e-7, "um": 1e-4, "µm": 1e-4, "mm": 0.1, "cm": 1.0, "m": 100.0}
_VOLUME_ML = {"uL": 1e-3, "µL": 1e-3, "mL": 1.0, "dL": 100.0, "L": 1000.0}
_PER_VOLUME = re.compile(r"^\s*([A-Za-z]+)\s*/\s*([A-Za-zµ]+)\s*$")


@functools.lru_cache(maxsize=1)
def registry() -> Any:
    """The unit registry: pint's defaults plus counts of cells and international units."""
    import pint

    ureg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    ureg.define("cell = [cell_count] = cells")
    ureg.define("IU = [international_unit]")
    return ureg


@functools.lru_cache(maxsize=512)
def _parse(text: str) -> Any:
    """pint's Unit for `text` ("" and "1" are dimensionless), or None when it is no unit."""
    ureg = registry()
    cleaned = text.strip().replace("^", "**")
    if cleaned in ("", "1"):
        return ureg.dimensionless
    try:
        unit = ureg.parse_units(cleaned)
    except Exception:  # noqa: BLE001 - pint raises several types (undefined unit, syntax, tokenizer)
        return None
    return unit


def parses(text: str) -> bool:
    """Whether `text` is a unit pint understands (with cells and IU)."""
    return _parse(text) is not None


def check_unit(text: str, kind: str, where: str) -> str:
    """`text` if it is a unit of `kind` ("time" or "length"), else ConfigError naming what is allowed."""
    dimension, examples = _KINDS[kind]
    unit = _parse(text)
    if unit is None or str(unit.dimensionality) != dimension:
        why = "no unit pint knows" if unit is None else f"its dimension is {unit.dimensionality}"
        raise ConfigError(f"{where}: {shown(text, 40)} is not a unit of {kind} ({why}); allowed: a unit of {kind} "
                          f"such as {examples}")
    return text


def _canonical(text: str) -> str:
    """pint's name of a single unit ("h" -> "hour", "um" -> "micrometer")."""
    return str(_parse(text))


@dataclass(frozen=True)
class UnitConversion:
    """A model written in (time_from, length_from) read in (time_to, length_to)."""

    time_from: str
    time_to: str
    length_from: str
    length_to: str

    @property
    def identity(self) -> bool:
        return _same(self.time_from, self.time_to) and _same(self.length_from, self.length_to)

    def _substitutions(self) -> dict[str, str]:
        out = {}
        if not _same(self.time_from, self.time_to):
            out[_canonical(self.time_from)] = self.time_to
        if not _same(self.length_from, self.length_to):
            out[_canonical(self.length_from)] = self.length_to
        return out

    def value(self, number: float, units: str, where: str) -> float:
        """`number` in `units` (the model's), expressed with the config's time and length."""
        if self.identity:
            return float(number)
        unit = _parse(units)
        if unit is None:
            raise ConfigError(f"{where}: unit {shown(units, 40)} is not a unit pint understands (e.g. 1/day, "
                              "um^2/day, cells/mL, mg/L, IU/L, 1/(cell day))")
        subs = {name: _parse(text) for name, text in self._substitutions().items()}
        target = registry().dimensionless
        for name, power in unit._units.items():  # the unit's factors, e.g. {micrometer: 2, day: -1}
            target = target * (subs.get(name) or registry().Unit(name)) ** power
        return float(registry().Quantity(float(number), unit).to(target).magnitude)

    def label(self, text: str) -> str:
        """`text` with the model's time and length units written as the config's."""
        subs = self._substitutions()
        if not subs or not text:
            return text

        def replace(match: re.Match[str]) -> str:
            token = match.group(0)
            unit = _parse(token)
            return subs.get(str(unit), token) if unit is not None else token

        return _TOKEN.sub(replace, text)

    def touches(self, text: str) -> bool:
        """Whether the label `text` contains the model's time or length unit being converted."""
        return self.label(text) != text


def _same(a: str, b: str) -> bool:
    if a == b:
        return True
    ua, ub = _parse(a), _parse(b)
    return ua is not None and ub is not None and ua == ub


def length_in(value: float, unit: str, to: str) -> float | None:
    """A length `value` in `unit` expressed in `to` (None when `to` is not a unit of length)."""
    if unit in _LENGTH_CM and to in _LENGTH_CM:  # without pint
        return float(f"{value * _LENGTH_CM[unit] / _LENGTH_CM[to]:.15g}")
    target = _parse(to) if to else None
    if target is None or str(target.dimensionality) != "[length]":
        return None
    return float(f"{registry().Quantity(value, unit).to(target).magnitude:.15g}")


def integral_unit(units: str, length_unit: str) -> tuple[float, str]:
    """(factor, label) of a density in `units` summed over cells of volume `length_unit`^3.

    A density per volume integrates to its amount (cells/mL x um^3 = 1e-12 cells); any
    other unit (or one pint does not read) gives the product, unreduced.
    """
    if not units:
        return 1.0, ""
    if not length_unit:
        return 1.0, units
    simple = _PER_VOLUME.match(units)
    if simple and simple.group(2) in _VOLUME_ML and length_unit in _LENGTH_CM and simple.group(1) not in _LENGTH_CM:
        factor = _LENGTH_CM[length_unit] ** 3 / _VOLUME_ML[simple.group(2)]
        return float(f"{factor:.15g}"), simple.group(1)
    density, length = _parse(units), _parse(length_unit)
    if density is None or length is None:
        return 1.0, f"{units}*{length_unit}^3"
    product = registry().Quantity(1.0, density * length**3)
    volume_power = product.dimensionality.get("[length]", 0)
    if volume_power != 0:  # not a per-volume density: keep the product as it is
        return 1.0, f"{units}*{length_unit}^3"
    # the amount: the density's unit without its volume (cells/mL -> cells, mg/L -> mg)
    amount = registry().dimensionless
    for name, power in density._units.items():
        if registry().Unit(name).dimensionality.get("[length]", 0) == 0:
            amount = amount * registry().Unit(name) ** power
    # 15 digits: 1e-12 rather than pint's 9.999999999999998e-13 (an exact power of ten)
    factor = float(f"{float(product.to(amount).magnitude):.15g}")
    label = f"{amount:~}" if amount != registry().dimensionless else "1"
    return factor if math.isfinite(factor) else 1.0, label.replace(" ** ", "^").replace("**", "^")
