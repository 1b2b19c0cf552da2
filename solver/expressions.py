"""Whitelisted expressions: config text -> sympy, never through eval.

Public API:
    parse_expression(text, allowed_names, where) -> sympy.Expr
    FUNCTIONS: the function names an expression may call.

The text is parsed with Python's `ast` (syntax only, nothing executed) and the
tree is walked node by node; every node type outside the whitelist is refused
with a one-line ExpressionError naming the config key. Allowed: numbers, names
from `allowed_names`, + - * / **, unary minus, calls of FUNCTIONS, comparisons
and `a if cond else b` (becomes a sympy Piecewise), `and`/`or` inside conditions.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable

import sympy as sp

from solver.errors import ExpressionError


def _pow(base: sp.Expr, exponent: sp.Expr) -> sp.Expr:
    return sp.Pow(base, exponent)


def _heaviside(x: sp.Expr) -> sp.Expr:
    # H(0) = 1 so that a threshold "x >= 0" is switched on at the threshold.
    return sp.Piecewise((sp.Integer(1), x >= 0), (sp.Integer(0), True))


FUNCTIONS: dict[str, Callable[..., sp.Expr]] = {
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "tanh": sp.tanh,
    "sin": sp.sin,
    "cos": sp.cos,
    "abs": sp.Abs,
    "min": sp.Min,
    "max": sp.Max,
    "pow": _pow,
    "heaviside": _heaviside,
}
_ARITY = {"min": (2, None), "max": (2, None), "pow": (2, 2)}

_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
_COMPARE = {
    ast.Lt: sp.StrictLessThan,
    ast.LtE: sp.LessThan,
    ast.Gt: sp.StrictGreaterThan,
    ast.GtE: sp.GreaterThan,
}
_MAX_LENGTH = 4000


def parse_expression(
    text: str | float | int, allowed_names: Iterable[str], where: str
) -> sp.Expr:
    """Parse config text into a sympy expression through the whitelist.

    Args:
        text: the expression as written in the config (a number is accepted as is).
        allowed_names: names the expression may use (species, parameters, coordinates...).
        where: the config key, for error messages (e.g. "model.species.u.reaction").

    Returns:
        The sympy expression; names become sympy Symbols (real).

    Raises:
        ExpressionError: malformed text, or anything outside the whitelist.
    """
    if isinstance(text, bool):
        raise ExpressionError(f"{where}: expected a number or an expression, got {text!r}")
    if isinstance(text, (int, float)):
        return sp.Float(text) if isinstance(text, float) else sp.Integer(text)
    if not isinstance(text, str):
        raise ExpressionError(
            f"{where}: expected a number or an expression string, got {type(text).__name__}"
        )
    if len(text) > _MAX_LENGTH:
        raise ExpressionError(f"{where}: expression longer than {_MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(
            f"{where}: malformed expression {text!r} ({exc.msg} at column {exc.offset})"
        ) from None
    allowed = set(allowed_names)
    return _Converter(allowed, where, text).convert(tree.body)


class _Converter:
    """Walks an ast tree, building sympy objects for whitelisted nodes only."""

    def __init__(self, allowed: set[str], where: str, text: str) -> None:
        self.allowed = allowed
        self.where = where
        self.text = text

    def fail(self, what: str) -> ExpressionError:
        return ExpressionError(f"{self.where}: {what} in {self.text!r}")

    def convert(self, node: ast.AST) -> sp.Expr:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise self.fail(f"only numbers are allowed as constants, not {node.value!r}")
            return sp.Float(node.value) if isinstance(node.value, float) else sp.Integer(node.value)
        if isinstance(node, ast.Name):
            if node.id in FUNCTIONS:
                raise self.fail(f"function {node.id!r} used without arguments")
            if node.id not in self.allowed:
                known = ", ".join(sorted(self.allowed)) or "(none)"
                raise self.fail(f"unknown name {node.id!r}; known names: {known}")
            return sp.Symbol(node.id, real=True)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](self.convert(node.left), self.convert(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.convert(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Call):
            return self.convert_call(node)
        if isinstance(node, ast.IfExp):
            cond = self.convert_condition(node.test)
            return sp.Piecewise(
                (self.convert(node.body), cond), (self.convert(node.orelse), True)
            )
        if isinstance(node, ast.Attribute):
            raise self.fail("attribute access is not allowed")
        if isinstance(node, ast.Subscript):
            raise self.fail("indexing is not allowed")
        if isinstance(node, (ast.Compare, ast.BoolOp)):
            raise self.fail("a comparison is only allowed as the condition of 'a if cond else b'")
        raise self.fail(f"{type(node).__name__} is not allowed")

    def convert_call(self, node: ast.Call) -> sp.Expr:
        if not isinstance(node.func, ast.Name):
            raise self.fail("only calls of plain function names are allowed")
        name = node.func.id
        if name not in FUNCTIONS:
            allowed = ", ".join(sorted(FUNCTIONS))
            raise self.fail(f"function {name!r} is not allowed; allowed functions: {allowed}")
        if node.keywords:
            raise self.fail(f"keyword arguments to {name}() are not allowed")
        lo, hi = _ARITY.get(name, (1, 1))
        n = len(node.args)
        if n < lo or (hi is not None and n > hi):
            expected = f"{lo}" if lo == hi else f"at least {lo}"
            raise self.fail(f"{name}() takes {expected} argument(s), got {n}")
        return FUNCTIONS[name](*(self.convert(a) for a in node.args))

    def convert_condition(self, node: ast.AST) -> sp.Basic:
        if isinstance(node, ast.BoolOp):
            parts = [self.convert_condition(v) for v in node.values]
            return sp.And(*parts) if isinstance(node.op, ast.And) else sp.Or(*parts)
        if isinstance(node, ast.Compare):
            terms = [self.convert(node.left)] + [self.convert(c) for c in node.comparators]
            rels = []
            for op, a, b in zip(node.ops, terms, terms[1:]):
                if type(op) not in _COMPARE:
                    raise self.fail(f"comparison {type(op).__name__} is not allowed; use < <= > >=")
                rels.append(_COMPARE[type(op)](a, b))
            return sp.And(*rels)
        raise self.fail("the condition of 'a if cond else b' must be a comparison")
