"""YAML as tumorsim reads it: safe (no Python objects), no duplicate keys, 1e-3 a float,
and of bounded size.

Public API:
    load_yaml(text) -> Any
    YAMLLimitError          a document past a limit of solver/limits.py (a yaml.YAMLError)

A leaf module: the config and the built-in model files are both read through it.

Aliases (`*a`) make a document's value a graph whose expansion can be exponential in its
text (9 lists of 9 aliases each: 9^9 values in a few hundred bytes); every consumer (the
validation, error messages, JSON for the checkpoint hash) walks the expansion. So the
expansion is counted once here, stopping at the limit, and nesting is bounded too.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from solver.limits import limit, refuse


class YAMLLimitError(yaml.YAMLError):
    """A YAML document nested too deeply or expanding (through aliases) to too many values."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key written twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: SafeLoader reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is written twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# PyYAML follows YAML 1.1, where 1e-3 and 7.5e8 (no dot or no exponent sign) are strings.
# Researchers write them all the time: resolve them as floats, as YAML 1.2 does.
_UniqueKeyLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:float"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse YAML safely (no Python objects), refusing duplicate keys, 1e-3 read as a float.

    Raises:
        YAMLLimitError: nested deeper than limit("yaml_depth") or expanding to more than
            limit("yaml_values") values (aliases expanded).
        yaml.YAMLError: malformed YAML or a key written twice.
    """
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except RecursionError:
        raise YAMLLimitError(f"nested too deeply to be read (levels of nesting: {refuse('yaml_depth')})") from None
    _check_size(data)
    return data


def _check_size(data: Any) -> None:
    """Count the values of `data` as its consumers see them (each alias expanded), stopping
    at the limits: the cost is bounded by the limit, not by the expansion."""
    max_values, max_depth = limit("yaml_values"), limit("yaml_depth")
    stack: list[tuple[Any, int]] = [(data, 1)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > max_values:
            raise YAMLLimitError(f"expands to more than {max_values} values (are aliases *name repeating a "
                                 f"large part?); {refuse('yaml_values')}")
        if isinstance(value, (dict, list)):
            if depth >= max_depth:
                raise YAMLLimitError(f"nested more than {max_depth} levels deep; {refuse('yaml_depth')}")
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` applied key by key (mappings merge, anything else replaces)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
