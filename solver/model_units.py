"""The units a run is in: the config's time and length units, the model converted into them.

Public API:
    RunUnits(time, length, conversion)   what every label and number of the run is in
        .describe() -> str                 one line: the units and where they come from
    run_units(config) -> RunUnits        checked against the model's declared units

A model that declares `units: {time, length, parameters}` (the built-in ones do) is
read in the config's `time.unit` and `grid.length_unit`: each parameter is converted
from its declared unit (solver/units.py), and every label with the model's time or
length in it (agents, diagnostics, outcomes) is rewritten. An empty `time.unit` or
`length_unit` takes the model's. A model without declared units keeps the config's
units as labels, as written.
"""

from __future__ import annotations

from dataclasses import dataclass

from solver.config import RunConfig
from solver.errors import ConfigError
from solver.units import UnitConversion


@dataclass(frozen=True)
class RunUnits:
    """The time and length units of a run's numbers, and the model's conversion into them
    (None: the model declares no units)."""

    time: str
    length: str
    conversion: UnitConversion | None = None

    def parameter(self, name: str, value: float, declared: dict[str, str]) -> float:
        """Parameter `name` in the run's units (declared: the model's parameter units)."""
        if self.conversion is None or self.conversion.identity:
            return float(value)
        return self.conversion.value(value, declared[name], f"model.units.parameters.{name}")

    def label(self, text: str) -> str:
        """A unit label of the model, in the run's units."""
        return text if self.conversion is None else self.conversion.label(text)

    def describe(self) -> str:
        """One line for validate and --dry-run: the run's units and where they come from."""
        units = f"time in {self.time or '(no unit)'}, lengths in {self.length or '(no unit)'}"
        c = self.conversion
        if c is None:
            return f"{units} (labels only: the model declares no units)"
        if c.identity:
            return f"{units} (the model's own)"
        return f"{units} (the model's {c.time_from} and {c.length_from}, every parameter converted)"


def run_units(config: RunConfig) -> RunUnits:
    """The run's units, the config's converted from the model's where it declares them.

    Raises:
        ConfigError: a time.unit that is not a time, a length_unit that is not a length,
            a parameter without a declared unit when a conversion is needed, or a species
            whose own unit holds the model's time or length (its config values could not
            be told apart).
    """
    declared = config.model.units
    time, length = config.time.unit, config.grid.length_unit
    if declared is None or not (declared.time or declared.length):
        return RunUnits(time, length)
    if time in ("", declared.time) and length in ("", declared.length):  # the model's own: pint not needed
        model_time, model_length = declared.time, declared.length
        return RunUnits(model_time, model_length, UnitConversion(model_time, model_time, model_length, model_length))
    from solver.units import check_unit

    model_time = check_unit(declared.time, "time", "model.units.time") if declared.time else ""
    model_length = check_unit(declared.length, "length", "model.units.length") if declared.length else ""
    time = check_unit(time, "time", "time.unit") if time and model_time else (time or model_time)
    length = check_unit(length, "length", "grid.length_unit") if length and model_length else (length or model_length)
    conversion = UnitConversion(model_time or time, time, model_length or length, length)
    if conversion.identity:
        return RunUnits(time, length, conversion)
    missing = [p for p in config.model.parameters if p not in declared.parameters]
    if missing:
        raise ConfigError(
            f"model.parameters.{missing[0]} has no unit in model.units.parameters, so it cannot be converted from "
            f"{model_time} and {model_length} to {time} and {length}; declare it (e.g. {missing[0]}: 1/{model_time}) "
            f"or run in the model's units ({model_time}, {model_length})")
    for name, species in config.model.species.items():
        if conversion.touches(species.units):
            raise ConfigError(
                f"model.species.{name}.units {species.units!r} holds the model's {model_time} or {model_length}, so "
                f"its values in the config could be meant in either unit; run in the model's units "
                f"(time.unit: {model_time}, length_unit: {model_length})")
    return RunUnits(time, length, conversion)  # an unreadable unit is refused when its parameter converts
