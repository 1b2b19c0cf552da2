"""Value types shared by the config sections: numbers that refuse booleans, ranges, expressions.

Public API:
    Number, PositiveFloat, NonNegativeFloat, Cells, Count, Seed, Expression
    in_range(low, high, low_open=True, high_open=False) -> an annotated float type whose
        error says "V is out of range; allowed: (low, high]"
    KeyedValueError     a ValueError about a sub-key of the value being validated
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainValidator


class KeyedValueError(ValueError):
    """A ValueError about a sub-key of the field being validated (e.g. boundary -> x.low)."""

    def __init__(self, subkey: str, message: str) -> None:
        super().__init__(message)
        self.subkey = subkey


def not_bool(value: Any) -> Any:
    """Refuse a bool where a number belongs: pydantic's lax mode would read `true` as 1."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")  # noqa: TRY004 (pydantic needs it)
    return value


def _expression(value: Any) -> float | int | str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(  # noqa: TRY004 (pydantic turns only ValueError into a validation error)
            f"expected a number or an expression in quotes, got {value!r}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return value


def in_range(low: float, high: float = math.inf, low_open: bool = True, high_open: bool = False) -> Any:
    """A finite float in the interval; the error names the value and the interval."""
    left = "(" if low_open else "["
    right = ")" if high_open or math.isinf(high) else "]"
    shown_high = "inf" if math.isinf(high) else f"{high:g}"

    def check(value: float) -> float:
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (math.isfinite(value) and above and below):
            raise ValueError(f"{value!r} is out of range; allowed: {left}{low:g}, {shown_high}{right}")
        return value

    return Annotated[float, BeforeValidator(not_bool), AfterValidator(check)]


Number = Annotated[float, BeforeValidator(not_bool)]
PositiveFloat = Annotated[Number, Field(gt=0)]
NonNegativeFloat = in_range(0.0, low_open=False)
Cells = Annotated[int, BeforeValidator(not_bool), Field(ge=1, le=65536)]
Count = Annotated[int, BeforeValidator(not_bool), Field(ge=1)]
Seed = Annotated[int, BeforeValidator(not_bool), Field(ge=0)]
# A number, or text parsed later by solver.expressions (never eval'd).
Expression = Annotated[float | int | str, PlainValidator(_expression)]
