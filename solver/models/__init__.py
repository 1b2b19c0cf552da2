"""Models shipped with tumorsim, written as data (one YAML file per model).

Public API:
    builtin_model(name, variant=None) -> dict   the model section, variant applied
    builtin_model_names() -> list[str]

A model file holds `description`, `source` (the citation), `model` (a config `model:`
section, with every default commented with its source), and optionally `variants`
(named parameter sets, e.g. patient9 / patient10) with `default_variant`, and
`extends: OTHER` to start from another built-in model (its model section, variants and
default variant), changing it key by key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from solver.errors import ConfigError

_DIR = Path(__file__).resolve().parent


def builtin_model_names() -> list[str]:
    return sorted(p.stem for p in _DIR.glob("*.yaml"))


def _model_file(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """A model file with its `extends` chain resolved (model sections merged key by key)."""
    from solver.config import deep_merge, load_yaml

    path = _DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"builtin: no built-in model {name!r}; built-in models: {', '.join(builtin_model_names())}")
    spec = load_yaml(path.read_text(encoding="utf-8"))
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
        if chosen not in variants:
            valid = ", ".join(variants) or "(none)"
            raise ConfigError(f"variant: {name} has no variant {chosen!r}; variants: {valid}")
        model["parameters"] = {**model.get("parameters", {}), **variants[chosen].get("parameters", {})}
    model["builtin"] = name
    model["variant"] = chosen
    return model
