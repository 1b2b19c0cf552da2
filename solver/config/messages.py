"""pydantic validation errors as ONE line naming the key, the value and what is allowed.

Public API:
    one_line_error(exc, root) -> str    root: the config class that was validated

Unknown keys list the valid keys of their section and suggest a close match; union
members are tagged '<...>' in their section's annotation (a name no key can have), so
error locations drop them and still find the section a key belongs to.
"""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from solver.config.types import KeyedValueError
from solver.text import first_line, shown


def _format_key(loc: tuple[Any, ...]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(top level)"


def _pick_error(exc: ValidationError) -> dict[str, Any]:
    """The error to report: an unknown key first (a misspelt key also makes one 'missing')."""
    errors = exc.errors(include_url=False)
    for err in errors:
        if err["type"] == "extra_forbidden":
            return err
    return errors[0]


def one_line_error(exc: ValidationError, root: type[BaseModel]) -> str:
    """The first (unknown keys first) error of `exc`, as one line; `root` was validated."""
    err = _pick_error(exc)
    full_loc = tuple(err["loc"])
    loc = tuple(p for p in full_loc if not _is_union_tag(p))
    key = _format_key(loc)
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        parent_cls = _model_at(root, full_loc[:-1])
        valid = list(parent_cls.model_fields) if parent_cls else []
        name = str(loc[-1])
        hint = (
            difflib.get_close_matches(name, valid, n=1)
            or [v for v in valid if name and (v.startswith(name) or name.startswith(v))][:1]
        )
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"unknown key {key!r}{did}; valid keys: {', '.join(valid)}"
    if kind == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        tags = sorted(t.strip(" '<>") for t in str(ctx.get("expected_tags", "")).split(","))
        tag = str(ctx.get("tag", "")).strip("<>")
        return f"{_format_key((*loc, 'kind'))}: unknown kind {tag!r}; valid kinds: {', '.join(tags)}"
    if kind == "missing" and loc and isinstance(loc[-1], int):
        return f"{_format_key(loc[:-1])}: expected 3 values [x, y, z], got {shown(value)}"
    if kind in ("too_short", "too_long") and isinstance(value, dict):
        least = (err.get("ctx") or {}).get("min_length", 1)
        return (
            f"{key}: needs at least {least} entr{'y' if least == 1 else 'ies'}, got {shown(value)}"
        )
    if kind in ("too_short", "too_long", "tuple_type"):
        return f"{key}: expected 3 values [x, y, z], got {shown(value)}"
    if "[key]" in err["loc"] or kind == "invalid_key":
        parent = loc[:-1]
        where = f" in {_format_key(parent)!r}" if parent else ""
        return f"key {shown(value)}{where} is not valid: keys are names (text)"
    if kind == "missing":
        return f"missing required key {key!r}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        cls = _model_at(root, full_loc)
        keys = f" with keys {', '.join(cls.model_fields)}" if cls else ""
        return f"{key}: expected a mapping{keys}, got {shown(value)}"
    error = (err.get("ctx") or {}).get("error")
    if isinstance(error, KeyedValueError) and error.subkey:
        key = f"{key}.{error.subkey}"
    msg = first_line(err["msg"])
    if msg.startswith("Value error, "):
        return f"{key}: {msg[len('Value error, ') :]}"
    msg = msg[0].lower() + msg[1:]
    return f"{key}: {msg}, got {shown(value)}"


def _is_union_tag(part: Any) -> bool:
    """Parts of an error location that are not config keys.

    The union members of these sections are tagged '<...>' (a name no key can have);
    pydantic adds '[key]' when a mapping key itself is invalid.
    """
    return isinstance(part, str) and (
        (part.startswith("<") and part.endswith(">")) or part == "[key]"
    )


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config class found by walking `loc` (union tags included) down from `root`.

    A union tag in `loc` picks that member of a tagged union; an untagged union (an
    optional section) resolves to its one mapping member. Mapping keys are skipped.
    """
    current: Any = root
    parts = list(loc)
    i = 0
    while i < len(parts):
        current = _strip(current)
        if _is_union(current):
            tag = parts[i] if _is_union_tag(parts[i]) else None
            current = _member(current, tag)
            if tag is not None:
                i += 1
            continue
        part = parts[i]
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return None
        i += 1
    current = _strip(current)
    if _is_union(current):
        current = _strip(_member(current, None))
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _strip(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _member(union: Any, tag: str | None) -> Any:
    """The member of `union` tagged `tag`; without a tag, its one section or mapping member."""
    for arg in get_args(union):
        if tag is not None:
            if get_origin(arg) is Annotated and any(getattr(m, "tag", None) == tag for m in get_args(arg)[1:]):
                return arg
            continue
        inner = _strip(arg)
        if (isinstance(inner, type) and issubclass(inner, BaseModel)) or get_origin(inner) is dict:
            return inner
    return None
