"""`--set KEY=VALUE`: change keys of a config mapping before it is validated.

Public API:
    Override                            one parsed `KEY=VALUE` (key path and YAML value)
    parse_override(text) -> Override    "treatment[il2].start=1.0" -> Override
    parse_key(key) -> tuple             "treatment[il2].start" -> ("treatment", Item("il2"), "start")
    apply_overrides(data, overrides, source) -> dict
        the mapping with its built-in model expanded and every override applied (not
        yet validated: solver.config.loading.parse_config validates it)
    get_value(data, key, default=None)  the value at a key path in a config mapping
    resolved_key(data, key) -> str      the key with treatment agents replaced by indexes
    PRE_EXPANSION_KEYS                  model.builtin and model.variant, set before expansion

Keys are dotted, with list items picked by index or, for an entry with an `agent`
(a treatment), by its agent: `treatment[il2].start`, `treatment[0].dose`,
`grid.shape[0]`, `model.parameters.K_T`, `model.maps.w.vessels.seed`,
`model.variant`. Values are parsed as YAML (solver.yaml_loader.load_yaml: numbers,
text, true/false, null, and flow lists or mappings such as `[8, 8, 8]`), never
evaluated.

A key must exist: the path is walked down the config's pydantic models
(solver/config/sections.py and sources.py) together with the mapping itself, so a
section key must be a field of its section, and an entry of a named mapping (a
parameter, a species, a map) must already be in it (a built-in model's keys exist
once the model is expanded, which is why overrides apply to the expanded mapping).
An unknown key is refused with the valid keys at that level named. `model.builtin`
and `model.variant` are applied before the expansion, so that a variant brings its
parameter set; in a resolved config (a run's config.yaml, which lists every parameter)
the parameters still at the old built-in value follow the change, those changed by hand
stay. The values are then validated with the rest of the config, with the
config's own messages.
"""

from __future__ import annotations

import copy
import difflib
import re
import types
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Discriminator, Tag
from pydantic_core import PydanticUndefined

from solver.builtin_models import with_builtin_model
from solver.config.sections import RunConfig
from solver.errors import ConfigError
from solver.text import first_line, shown
from solver.yaml_loader import load_yaml

PRE_EXPANSION_KEYS = (("model", "builtin"), ("model", "variant"))
_SEGMENT_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[[^\[\]]*\])*)")
_ITEM_RE = re.compile(r"\[([^\[\]]*)\]")


@dataclass(frozen=True)
class Item:
    """A list item in a key path: an index, or the `agent` of a treatment entry."""

    selector: int | str

    def __str__(self) -> str:
        return f"[{self.selector}]"


KeyPath = tuple[str | Item, ...]


@dataclass(frozen=True)
class Override:
    """One `KEY=VALUE`: the key as written, its path, the value (parsed YAML), and where it
    came from for messages ("--set"; a study names its section, e.g. "vary")."""

    key: str
    path: KeyPath
    value: Any
    origin: str = "--set"

    def __str__(self) -> str:
        return f"{self.key}={yaml.safe_dump(self.value, default_flow_style=True).strip().removesuffix('...').strip()}"

    @property
    def label(self) -> str:
        """How messages name it: "--set KEY"."""
        return f"{self.origin} {self.key}"


def format_key(path: KeyPath) -> str:
    """("treatment", Item(1), "start") -> "treatment[1].start"."""
    out = ""
    for part in path:
        out += str(part) if isinstance(part, Item) else (f".{part}" if out else part)
    return out


def parse_key(key: str) -> KeyPath:
    """A dotted key with [index] / [agent] items -> its path.

    Raises:
        ConfigError: the key is not of that form.
    """
    text = key.strip()
    path: list[str | Item] = []
    for segment in text.split(".") if text else [""]:
        match = _SEGMENT_RE.fullmatch(segment)
        if match is None:
            raise ConfigError(
                f"--set: malformed key {shown(key)}: use dotted names with list items in brackets, "
                "e.g. model.parameters.K_T, treatment[il2].start, treatment[0].dose, grid.shape[0]"
            )
        path.append(match.group(1))
        for item in _ITEM_RE.findall(match.group(2)):
            item = item.strip()
            if not item:
                raise ConfigError(f"--set: empty [] in key {shown(key)}: give an index or an agent name")
            path.append(Item(int(item) if re.fullmatch(r"-?[0-9]+", item) else item))
    return tuple(path)


def parse_override(text: str) -> Override:
    """"KEY=VALUE" -> Override; VALUE is read as YAML (a number, text, true/false, null, [..], {..}).

    Raises:
        ConfigError: no '=', a malformed key, or a value that is not valid YAML.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set: expected KEY=VALUE, got {shown(text)} (e.g. model.parameters.K_T=0.5)")
    path = parse_key(key)
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"--set {key.strip()}: value {shown(raw)} is not valid YAML ({first_line(problem)})") from None
    return Override(key.strip(), path, value)


def as_override(item: Override | str | tuple[str, Any], origin: str = "--set") -> Override:
    """An Override from `Override`, "KEY=VALUE" text, or a (key, value) pair (value as is)."""
    if isinstance(item, Override):
        return item
    if isinstance(item, str):
        o = parse_override(item)
        return o if origin == "--set" else Override(o.key, o.path, o.value, origin)
    key, value = item
    try:
        return Override(key, parse_key(key), value, origin)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("--set:", f"{origin}:", 1)) from None


def apply_overrides(data: dict[str, Any], overrides: Any, source: str = "<config>") -> dict[str, Any]:
    """`data` with its built-in model expanded and every override applied, in order.

    `data` is not changed. Each override is an Override, "KEY=VALUE" text or a
    (key, value) pair. The result is still to be validated (parse_config).

    Raises:
        ConfigError: a malformed override, or a key that does not exist (the valid keys
            at that level are named).
    """
    items = [as_override(o) for o in overrides]
    data = copy.deepcopy(data)
    early = [o for o in items if o.path in PRE_EXPANSION_KEYS]
    if early:
        model = data.get("model")
        model = {"builtin": model} if isinstance(model, str) else dict(model or {})
        before = _builtin_parameters(model)
        for o in early:
            model[o.path[1]] = o.value
        if before:  # a resolved config lists every parameter: those still at the built-in value follow the change
            params = model.get("parameters")
            if isinstance(params, dict):
                model["parameters"] = {k: v for k, v in params.items() if not (k in before and before[k] == v)}
        data["model"] = model
    try:
        data = with_builtin_model(data, source)
    except ConfigError as exc:
        if not early:
            raise
        raise ConfigError(f"{exc} (set by {', '.join(f'{o.origin} {o}' for o in early)})") from None
    for o in items:
        if o.path not in PRE_EXPANSION_KEYS:
            data = _set(RunConfig, data, o.path, 0, o)
    return data


def get_value(data: dict[str, Any], key: str | KeyPath, default: Any = None) -> Any:
    """The value at a key path in a config mapping (`default` where the path leads nowhere)."""
    path = parse_key(key) if isinstance(key, str) else key
    current: Any = data
    for part in path:
        if isinstance(part, Item) and isinstance(current, list):
            sel = part.selector
            hits = [e for e in current if isinstance(e, dict) and e.get("agent") == sel] if isinstance(sel, str) else \
                current[sel:sel + 1] if -len(current) <= sel < len(current) else []
            if len(hits) != 1:
                return default
            current = hits[0]
        elif isinstance(part, str) and isinstance(current, dict) and part in current:
            current = current[part]
        else:
            return default
    return current


def _builtin_parameters(model: dict[str, Any]) -> dict[str, Any]:
    """The parameters the built-in model (and variant) of a model section give, {} if none."""
    from solver.builtin_models import builtin_model

    if not isinstance(model.get("builtin"), str):
        return {}
    try:
        return builtin_model(model["builtin"], model.get("variant")).get("parameters", {})
    except ConfigError:
        return {}


def resolved_key(data: dict[str, Any], key: str | KeyPath) -> str:
    """The key with treatment agents replaced by their index in `data` ("treatment[1].start")."""
    path = parse_key(key) if isinstance(key, str) else key
    out: list[str | Item] = []
    current: Any = data
    for part in path:
        if isinstance(part, Item) and isinstance(current, list):
            index = _index(current, part, Override(format_key(path), path, None), tuple(out))
            out.append(Item(index))
            current = current[index]
        else:
            out.append(part)
            current = current.get(part) if isinstance(current, dict) else None
    return format_key(tuple(out))


# ------------------------------------------------------------------------------ walking


def _set(annotation: Any, current: Any, path: KeyPath, i: int, o: Override) -> Any:
    """`current` (the value at path[:i], of type `annotation`) with path[i:] set to o.value."""
    if i == len(path):
        return o.value
    annotation, metadata = _strip(annotation)
    part = path[i]
    where = path[:i]
    if _is_union(annotation):
        member = _union_member(annotation, metadata, current)
        if member is None:
            raise _no_subkeys(o, where, current)
        return _set(member, current, path, i, o)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = annotation.model_fields
        if not isinstance(part, str) or part not in fields:
            raise _unknown(o, where, part, list(fields))
        if current is None:
            current = {}
        if not isinstance(current, dict):
            raise _no_subkeys(o, where, current)
        field = fields[part]
        value = current[part] if part in current else _default(field)
        # pydantic keeps a field's Annotated metadata (a union's discriminator) apart from its annotation
        inner = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        return {**current, part: _set(inner, value, path, i + 1, o)}
    origin = get_origin(annotation)
    if origin is dict:
        if not isinstance(current, dict) or not current:
            raise ConfigError(f"{o.label}: {format_key(where)} has no entries to set")
        if not isinstance(part, str) or part not in current:
            raise _unknown(o, where, part, [str(k) for k in current])
        return {**current, part: _set(get_args(annotation)[1], current[part], path, i + 1, o)}
    if origin in (list, tuple):
        if not isinstance(part, Item):
            raise _unknown(o, where, part, [f"[0]..[{len(current) - 1}]"] if isinstance(current, list) else [])
        if not isinstance(current, (list, tuple)):
            raise _no_subkeys(o, where, current)
        index = _index(list(current), part, o, where)
        args = get_args(annotation)
        item_type = args[0] if origin is list or (len(args) == 2 and args[1] is Ellipsis) else args[index]
        items = list(current)
        items[index] = _set(item_type, items[index], path, i + 1, o)
        return items
    raise _no_subkeys(o, where, current)


def _index(items: list[Any], part: Item, o: Override, where: KeyPath) -> int:
    """The index an Item picks in `items`: a number, or the one entry with that `agent`."""
    sel = part.selector
    key = format_key(where)
    if isinstance(sel, int):
        if not -len(items) <= sel < len(items):
            span = f"[0]..[{len(items) - 1}]" if items else "none (the list is empty)"
            raise ConfigError(f"{o.label}: {key} has no item [{sel}]; items: {span}")
        return sel % len(items)
    agents = [e.get("agent") if isinstance(e, dict) else None for e in items]
    hits = [j for j, a in enumerate(agents) if a == sel]
    if len(hits) == 1:
        return hits[0]
    named = sorted({a for a in agents if isinstance(a, str)})
    if not hits:
        valid = ", ".join(f"[{a}]" for a in named) or "none"
        span = f" or an index [0]..[{len(items) - 1}]" if items else ""
        raise ConfigError(f"{o.label}: {key} has no entry for agent {sel!r}; agents: {valid}{span}")
    raise ConfigError(
        f"{o.label}: {key} has {len(hits)} entries for agent {sel!r} "
        f"({', '.join(f'{key}[{j}]' for j in hits)}): pick one by its index"
    )


def _unknown(o: Override, where: KeyPath, part: str | Item, valid: list[str]) -> ConfigError:
    name = str(part)
    hint = difflib.get_close_matches(name, valid, n=1)
    did = f" (did you mean {hint[0]!r}?)" if hint else ""
    full = format_key((*where, part))
    level = f" of {format_key(where)}" if where else ""
    listed = ", ".join(valid) if valid else "none"
    return ConfigError(f"{o.label}: unknown key {full!r}{did}; valid keys{level}: {listed}")


def _no_subkeys(o: Override, where: KeyPath, current: Any) -> ConfigError:
    return ConfigError(
        f"{o.label}: {format_key(where)} is {shown(current)}, which has no key {str(o.path[len(where)])!r}; "
        f"set the whole value instead (e.g. --set '{format_key(where)}={{...}}')"
    )


def _default(field: Any) -> Any:
    """A field's default as plain data, to set one key of a section the mapping leaves out."""
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        value = None
    else:
        value = field.default
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else copy.deepcopy(value)


def _strip(annotation: Any) -> tuple[Any, list[Any]]:
    metadata: list[Any] = []
    while get_origin(annotation) is Annotated:
        args = get_args(annotation)
        annotation, metadata = args[0], [*metadata, *args[1:]]
    return annotation, metadata


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _union_member(union: Any, metadata: list[Any], current: Any) -> Any:
    """The member of `union` that `current` belongs to: by the union's discriminator when it
    has one, else its one section, mapping or list member (an optional section)."""
    members = get_args(union)
    discriminators = [m for m in metadata if isinstance(m, Discriminator)]
    if discriminators and callable(discriminators[0].discriminator):
        tag = discriminators[0].discriminator(current)
        for member in members:
            inner, meta = _strip(member)
            if any(isinstance(m, Tag) and m.tag == tag for m in meta):
                return member
        return None
    for member in members:
        inner, _ = _strip(member)
        if (isinstance(inner, type) and issubclass(inner, BaseModel)) or get_origin(inner) in (dict, list, tuple):
            return member
    return None
