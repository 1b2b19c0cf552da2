"""Models shipped with tumorsim, written as data (one YAML file per model).

Public API:
    builtin_model(name, variant=None) -> dict     the model section, variant applied
    builtin_model_names() -> list[str]
    with_builtin_model(data, source) -> dict      a config mapping with `model: NAME` expanded
    builtin_outcomes(name) -> dict                the model's default study outcomes (raw mappings)

A model file holds `description`, `source` (the citation), `model` (a config `model:`
section, with every default commented with its source), and optionally `variants`
(named parameter sets, e.g. patient9 / patient10) with `default_variant`, `outcomes`
(the default outcomes of a study member, solver/study/outcomes.py), and
`extends: OTHER` to start from another built-in model (its model section, variants,
default variant and outcomes), changing it key by key. docs/model.md documents the
shipped models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from solver.errors import ConfigError
from solver.text import shown
from solver.yaml_loader import deep_merge, load_yaml

_DIR = Path(__file__).resolve().parent


def builtin_model_names() -> list[str]:
    return sorted(p.stem for p in _DIR.glob("*.yaml"))


def _model_file(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """A model file with its `extends` chain resolved (model sections merged key by key)."""
    if not isinstance(name, str) or name not in builtin_model_names():  # a name, never a path
        raise ConfigError(f"builtin: no built-in model {shown(name, 60)}; built-in models: "
                          f"{', '.join(builtin_model_names())}")
    spec = load_yaml((_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    if not isinstance(spec, dict) or not isinstance(spec.get("model"), dict):
        raise ConfigError(f"builtin: model file {name!r} does not hold a mapping with a model section")
    base_name = spec.get("extends")
    if base_name is None:
        return spec
    if base_name in seen:
        raise ConfigError(f"builtin: model {name!r} extends itself through {base_name!r}")
    base = _model_file(base_name, (*seen, name))
    return {
        **base,
        **{k: v for k, v in spec.items() if k not in ("model", "variants")},
        "model": deep_merge(base["model"], spec.get("model", {})),
        "variants": deep_merge(base.get("variants", {}), spec.get("variants", {})),
    }


def builtin_model(name: str, variant: str | None = None) -> dict[str, Any]:
    """The `model:` section of a built-in model, with the parameters of `variant` applied.

    Raises:
        ConfigError: unknown model or variant (the message lists the valid ones).
    """
    spec = _model_file(name)
    model = dict(spec["model"])
    variants = spec.get("variants", {})
    chosen = variant if variant is not None else spec.get("default_variant")
    if chosen is not None:
        if not isinstance(chosen, str) or chosen not in variants:
            valid = ", ".join(variants) or "(none)"
            raise ConfigError(f"variant: {name} has no variant {shown(chosen, 60)}; variants: {valid}")
        model["parameters"] = {**model.get("parameters", {}), **variants[chosen].get("parameters", {})}
    model["builtin"] = name
    model["variant"] = chosen
    return model


def with_builtin_model(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Expand `model: NAME` / `model: {builtin: NAME, variant: V, ...}` into the full model;
    every key given beside `builtin` overrides the built-in one, key by key."""
    model = data.get("model")
    if isinstance(model, str):
        model = {"builtin": model}
    if not isinstance(model, dict) or model.get("builtin") is None:
        return data
    try:
        base = builtin_model(model["builtin"], model.get("variant"))
    except ConfigError as exc:
        raise ConfigError(f"{source}: model.{exc}") from None
    overrides = {k: v for k, v in model.items() if k not in ("builtin", "variant")}
    return {**data, "model": deep_merge(base, overrides)}


def builtin_outcomes(name: str) -> dict[str, dict[str, object]]:
    """The default study outcomes of a built-in model, as written in its file (an `extends`
    model inherits them); {} when it declares none. solver/study/spec.py validates them.

    Raises:
        ConfigError: unknown model (the message lists the built-in ones).
    """
    outcomes = _model_file(name).get("outcomes") or {}
    return {str(k): dict(v) for k, v in outcomes.items()}
