"""The expression whitelist (solver.expressions): config text -> sympy, never through eval."""

from __future__ import annotations

import ast
import builtins
import time
from pathlib import Path

import pytest
import sympy as sp

from solver.errors import ConfigError, ExpressionError
from solver.expressions import FUNCTIONS, parse_expression

WHERE = "model.species.u.reaction"
NAMES = ("u", "v", "a", "b", "x", "t")
u, v, a, b, x, t = (sp.Symbol(n, real=True) for n in NAMES)


def parse(text: object, names: tuple[str, ...] = NAMES) -> sp.Expr:
    return parse_expression(text, names, WHERE)  # type: ignore[arg-type]


def refusal(text: object, names: tuple[str, ...] = NAMES) -> str:
    """The ExpressionError message for `text`, checked to be one line naming the key."""
    with pytest.raises(ExpressionError) as info:
        parse(text, names)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    assert message.startswith(f"{WHERE}: ")
    return message


# ----------------------------------------------------------------------------- valid input


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", sp.Integer(3)),
        ("2.5", sp.Float(2.5)),
        ("1e-3", sp.Float(1e-3)),
        (7, sp.Integer(7)),
        (0.25, sp.Float(0.25)),
        ("u + 2*v - a/4", u + 2 * v - a / 4),
        ("u**2", u**2),
        ("-u", -u),
        ("+u", u),
        ("-(u - v)**3", -((u - v) ** 3)),
        ("2**3", sp.Integer(8)),
        ("2**-1", sp.Rational(1, 2)),
        ("exp(u)", sp.exp(u)),
        ("log(u)", sp.log(u)),
        ("sqrt(u)", sp.sqrt(u)),
        ("tanh(u)", sp.tanh(u)),
        ("sin(x) + cos(x)", sp.sin(x) + sp.cos(x)),
        ("abs(u)", sp.Abs(u)),
        ("min(u, v)", sp.Min(u, v)),
        ("max(u, v, 1)", sp.Max(u, v, 1)),
        ("pow(u, 3)", u**3),
        ("a*u*(1 - u)", a * u * (1 - u)),
        ("u\n  + 1", u + 1),  # a YAML block scalar keeps its line breaks
        ("a if x < 3 else b", sp.Piecewise((a, x < 3), (b, True))),
    ],
)
def test_valid_expression_gives_the_sympy_expression(text: object, expected: sp.Expr) -> None:
    result = parse(text)
    assert result == expected
    assert isinstance(result, sp.Basic)


def test_names_become_real_symbols() -> None:
    result = parse("u*v")
    assert result.free_symbols == {u, v}
    assert all(s.is_real for s in result.free_symbols)


@pytest.mark.parametrize(("at", "expected"), [(-1.0, 0), (0.0, 1), (2.0, 1)])
def test_heaviside_is_one_from_zero_on(at: float, expected: int) -> None:
    result = parse("heaviside(u)")
    assert isinstance(result, sp.Piecewise)
    assert result.subs(u, at) == expected


def test_conditional_is_a_piecewise_in_the_right_order() -> None:
    result = parse("a if x < 3 else b")
    assert isinstance(result, sp.Piecewise)
    assert result.subs({x: 2.0, a: 10, b: 20}) == 10
    assert result.subs({x: 3.0, a: 10, b: 20}) == 20


@pytest.mark.parametrize(
    ("at_x", "expected"), [(0.0, 0), (2.0, 1), (3.0, 0), (5.0, 0), (7.0, 1), (9.0, 1)]
)
def test_and_or_in_a_condition(at_x: float, expected: int) -> None:
    result = parse("1 if x > 1 and x < 3 or x >= 7 else 0")
    assert result.subs(x, at_x) == expected


@pytest.mark.parametrize(("at_x", "expected"), [(0.0, 0), (1.0, 1), (2.0, 1), (2.5, 0)])
def test_chained_comparison_means_all_of_them(at_x: float, expected: int) -> None:
    assert parse("1 if 0 < x <= 2 else 0").subs(x, at_x) == expected


def test_nested_conditionals() -> None:
    result = parse("1 if x < 1 else (2 if x < 2 else 3)")
    assert [result.subs(x, value) for value in (0.5, 1.5, 2.5)] == [1, 2, 3]


# ----------------------------------------------------------------------- hostile or malformed

HOSTILE = [
    ("__import__('os').system('x')", "attribute access"),
    ("__import__('os')", "'__import__' is not an allowed function"),
    ("().__class__", "attribute access"),
    ("u.__class__.__bases__[0].__subclasses__()", "attribute access"),
    ("u.real", "attribute access '.real'"),
    ("u[0]", "indexing"),
    ("lambda: 1", "Lambda is not allowed"),
    ("eval('1')", "'eval' is not an allowed function"),
    ("exec('1')", "'exec' is not an allowed function"),
    ("open('f')", "'open' is not an allowed function"),
    ("[1,2]", "List is not allowed"),
    ("{1: 2}", "Dict is not allowed"),
    ("(u, v)", "Tuple is not allowed"),
    ("'str'", "'str' is not allowed"),
    ("f'{u}'", "is not allowed"),
    ("(u := 1)", "NamedExpr is not allowed"),
    ("[u for u in (1, 2)]", "ListComp is not allowed"),
    ("u @ v", "operator MatMult is not allowed"),
    ("u // 2", "operator FloorDiv is not allowed"),
    ("not u", "operator Not is not allowed"),
    ("u if u else 1", "must be a comparison"),
    ("1 if u == 1 else 0", "comparison '==' is not allowed"),
    ("1 if u in (1,) else 0", "comparison 'in' is not allowed"),
    ("u == 1", "only allowed as the condition"),
    ("u < 1", "only allowed as the condition"),
    ("u and v", "only allowed as the condition"),
    ("1 +", "malformed expression"),
    ("u*(1-", "malformed expression"),
    ("", "malformed expression"),
    ("u\x00", "malformed expression"),
    ("min(u)", "min() takes at least 2 argument(s), got 1"),
    ("max(u)", "max() takes at least 2 argument(s), got 1"),
    ("pow(u)", "pow() takes 2 argument(s), got 1"),
    ("pow(u, 2, 3)", "pow() takes 2 argument(s), got 3"),
    ("exp(u, v)", "exp() takes 1 argument(s), got 2"),
    ("exp(x=u)", "keyword arguments to exp() are not allowed"),
    ("min(u, v, key=abs)", "keyword arguments to min() are not allowed"),
    ("exp", "used without arguments"),
    ("u(1)", "'u' is not a function"),
    ("True", "True is not allowed"),
    ("None", "None is not allowed"),
    ("1j", "1j is not allowed"),
    ("u/0", "division by zero"),
    ("0**-1", "division by zero"),
    ("sqrt(-1)", "complex value"),
    ("(-8)**(1/3)", "negative number to a fractional power"),
    ("1e999", "too large"),
    ("9**9**9**9", "too large"),
    ("pow(10, 10**10)", "too large"),
    ("-" * 3000 + "1", "nested too deeply"),
    ("1" + "+1" * 1900, "nested too deeply"),
    ("u+" * 2500 + "u", "5001 characters long; at most 4000"),
]


@pytest.mark.parametrize(("text", "fragment"), HOSTILE, ids=[repr(h[0])[:40] for h in HOSTILE])
def test_hostile_or_malformed_text_is_refused_in_one_line(text: str, fragment: str) -> None:
    started = time.perf_counter()
    message = refusal(text)
    assert fragment in message
    assert time.perf_counter() - started < 2.0  # refused, not computed


def test_refusal_of_a_construct_says_what_is_allowed() -> None:
    message = refusal("u.real")
    assert "allowed:" in message and "a if cond else b" in message


def test_refusal_of_a_function_lists_the_allowed_functions() -> None:
    message = refusal("open('f')")
    assert f"allowed functions: {', '.join(sorted(FUNCTIONS))}" in message


def test_unknown_name_lists_the_known_names_and_the_close_match() -> None:
    message = refusal("vv*u")
    assert "unknown name 'vv'" in message
    assert "did you mean 'v'?" in message
    assert "known names: a, b, t, u, v, x" in message


def test_unknown_name_with_no_names_allowed() -> None:
    assert "known names: (none)" in refusal("k", ())


@pytest.mark.parametrize("value", [True, False, None, [1], {"a": 1}, float("inf"), float("nan")])
def test_a_value_that_is_not_a_number_or_text_is_refused(value: object) -> None:
    message = refusal(value)
    assert repr(value) in message


def test_very_long_text_is_not_echoed_whole() -> None:
    message = refusal("u+" * 2500 + "u")
    assert len(message) < 200


def test_message_quotes_the_text_shortened() -> None:
    text = "k + " + "u*" * 100 + "u"
    message = refusal(text)
    assert "unknown name 'k'" in message
    assert "..." in message and len(message) < 200


def test_expression_error_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse("u.real")


# ------------------------------------------------------------------------- nothing executes


@pytest.mark.parametrize("name", ["open", "print", "eval", "exec", "__import__", "globals", "os"])
def test_a_builtin_name_is_just_an_unknown_name(name: str) -> None:
    assert f"unknown name {name!r}" in refusal(name)


def test_names_that_shadow_builtins_are_only_symbols() -> None:
    result = parse_expression("open + eval", ["open", "eval"], WHERE)
    assert result == sp.Symbol("open", real=True) + sp.Symbol("eval", real=True)
    assert "is not a function" in refusal("open(1)", ("open",))


def test_parsing_never_evaluates_or_compiles_to_code(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_compile = builtins.compile

    def forbidden(*args: object, **kwargs: object) -> None:
        calls.append("eval/exec")
        raise AssertionError("the parser must not execute text")

    def syntax_tree_only(source, filename, mode, flags=0, *args, **kwargs):
        if not flags & ast.PyCF_ONLY_AST:  # ast.parse is the one allowed use
            calls.append(f"compile {mode}")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", syntax_tree_only)
    try:
        result = parse(
            "a*u*(1 - u) + (max(u, v) if x < 3 and t > 0 else heaviside(v - 1)) + exp(-u)"
        )
    finally:
        monkeypatch.undo()
    assert calls == []
    assert result.free_symbols == {a, u, v, x, t}


def test_a_hostile_expression_has_no_side_effect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for text in (
        "__import__('os').system('touch pwned')",
        "__import__('pathlib').Path('pwned').touch()",
        "open('pwned', 'w')",
    ):
        refusal(text)
    assert list(tmp_path.iterdir()) == []
