"""Small builders shared by the numerical tests: a config from a few keywords."""

from __future__ import annotations

from typing import Any

from solver.config import RunConfig, parse_config


def make_config(
    species: dict[str, dict[str, Any]],
    shape: tuple[int, int, int],
    spacing: float | tuple[float, float, float] = 1.0,
    end: float = 1.0,
    parameters: dict[str, float] | None = None,
    maps: dict[str, Any] | None = None,
    precision: str = "float64",
    backend: str = "cpu",
    **time: Any,
) -> RunConfig:
    """A RunConfig for a user-defined model, as a YAML file would give it.

    The integrator is explicit unless `integrator=` says otherwise: most tests check the
    explicit discretisation, which `auto` would replace by imex for a fast diffuser.
    """
    time.setdefault("integrator", "explicit")
    return parse_config(
        {
            "name": "test",
            "backend": backend,
            "precision": precision,
            "grid": {"shape": list(shape), "spacing": spacing},
            "time": {"end": end, **time},
            "output": {"check_every": 50},
            "model": {"parameters": parameters or {}, "maps": maps or {}, "species": species},
        },
        source="<test>",
    )
