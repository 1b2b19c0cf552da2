"""Whitelisted expressions: config text -> sympy, never through eval.

Public API:
    parse_expression(text, allowed_names, where) -> sympy.Expr
    parse_condition(text, allowed_names, where) -> sympy boolean (for diagnostics `where:`)
    check_expression_size(expr, where)   refuse an expression past the symbolic-work limits
    FUNCTIONS: the function names an expression may call.

The text is parsed with Python's `ast` (syntax only, nothing executed) and the
tree is walked node by node; every node type outside the whitelist is refused
with a one-line ExpressionError naming the config key. Allowed: numbers, names
from `allowed_names`, + - * / **, unary minus, calls of FUNCTIONS, comparisons
and `a if cond else b` (becomes a sympy Piecewise), `and`/`or` inside conditions.
Results that no float could hold are refused while parsing: a division by zero,
a complex value, or a power of two numbers too large for a float (`9**9**9`, which
sympy would otherwise try to compute exactly).

The symbolic work an expression causes is bounded (solver/limits.py): its nodes, the
operands of min() and max() (the derivative of max(a1, ..., an) that the stability bound
takes grows steeply with n: 16 operands about 4 s, 30 about 28 s), and the terms its
products give when multiplied out (the loss-rate split expands them). Each is checked on
the text as written and, by check_expression_size, on the expression with every
definition substituted.
"""

from __future__ import annotations

import ast
import difflib
import math
from collections.abc import Callable, Iterable

import sympy as sp

from solver.errors import ExpressionError
from solver.limits import limit, refuse
from solver.text import shown


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
_COMPARE_SYMBOLS = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}
_MAX_LENGTH = 4000
_SHOWN_LENGTH = 60
# A power of two numbers is computed exactly only when it stays below this size.
_MAX_EXACT_POWER = 1e300
_ALLOWED_SYNTAX = (
    "allowed: numbers, names, + - * / **, calls of "
    + ", ".join(sorted(FUNCTIONS))
    + ", and 'a if cond else b'"
)


def parse_expression(text: str | float, allowed_names: Iterable[str], where: str) -> sp.Expr:
    """Parse config text into a sympy expression through the whitelist.

    Nothing in the text is executed: it is parsed by `ast.parse` and each node is
    translated to a sympy object by hand. Names become real sympy Symbols; a power
    of two numbers too large for a float, or a division by zero, is refused.

    Args:
        text: the expression as written in the config (a number is accepted as is).
        allowed_names: names the expression may use (species, parameters, coordinates...).
        where: the config key, for error messages (e.g. "model.species.u.reaction").

    Returns:
        The sympy expression; names become sympy Symbols (real).

    Raises:
        ExpressionError: malformed text, or anything outside the whitelist; the message
            is one line that starts with `where`.
    """
    if isinstance(text, bool) or not isinstance(text, (int, float, str)):
        raise ExpressionError(
            f"{where}: expected a number or an expression in quotes, got {_shown(text)}"
        )
    if isinstance(text, (int, float)):
        if isinstance(text, float) and not math.isfinite(text):
            raise ExpressionError(f"{where}: expected a finite number, got {text!r}")
        return sp.Float(text) if isinstance(text, float) else sp.Integer(text)
    if len(text) > _MAX_LENGTH:
        raise ExpressionError(
            f"{where}: expression is {len(text)} characters long; at most {_MAX_LENGTH} are allowed"
        )
    try:
        # Line breaks (a YAML block scalar) separate terms like spaces do.
        tree = ast.parse(" ".join(text.split()), mode="eval")
    except SyntaxError as exc:
        column = f" at column {exc.offset}" if exc.offset else ""
        raise ExpressionError(
            f"{where}: malformed expression {_shown(text)} ({exc.msg}{column})"
        ) from None
    except ValueError as exc:  # e.g. a NUL character, on some Python versions
        raise ExpressionError(f"{where}: malformed expression {_shown(text)} ({exc})") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"{where}: expression {_shown(text)} is nested too deeply") from None
    _check_written_size(tree, where, text)
    converter = _Converter(set(allowed_names), where, text)
    try:
        expr = converter.convert(tree.body)
    except RecursionError:
        raise ExpressionError(f"{where}: expression {_shown(text)} is nested too deeply") from None
    except (TypeError, ValueError) as exc:  # sympy refusing e.g. a comparison with a complex value
        message = " ".join(str(exc).split())
        raise converter.fail(f"an invalid operation ({message})") from None
    if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise converter.fail("division by zero (or another infinite value)")
    if expr.has(sp.I):
        raise converter.fail("a complex value (e.g. sqrt or log of a negative number)")
    return expr


def _check_written_size(tree: ast.AST, where: str, text: str) -> None:
    """Refuse, before sympy sees it, an expression with too many nodes or min/max operands."""
    nodes = operands = 0
    for node in ast.walk(tree):
        nodes += 1
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("min", "max"):
            operands += len(node.args)
    if nodes > limit("expression_nodes"):
        raise ExpressionError(f"{where}: expression {_shown(text)} has {nodes} nodes; {refuse('expression_nodes')}")
    if operands > limit("minmax_operands"):
        raise ExpressionError(f"{where}: expression {_shown(text)} gives min()/max() {operands} operands in all; "
                              f"{refuse('minmax_operands')}")


def check_expression_size(expr: sp.Basic, where: str) -> None:
    """Refuse an expression (definitions substituted) past the symbolic-work limits: its
    nodes as a tree, its min/max operands, and the terms its products multiply out to.

    Shared subexpressions (a definition used twice) count at each use, as the code printers
    and derivatives see them; the walk itself visits each distinct subexpression once.

    Raises:
        ExpressionError: one line naming `where`, the measure and its limit.
    """
    cap = 1 << 62
    sizes: dict[sp.Basic, tuple[int, int, int]] = {}
    worst_terms = 0
    stack: list[tuple[sp.Basic, bool]] = [(expr, False)]
    while stack:
        node, done = stack.pop()
        if node in sizes:
            continue
        if not done:
            stack.append((node, True))
            stack.extend((a, False) for a in node.args if a not in sizes)
            continue
        children = [sizes[a] for a in node.args]
        nodes = min(cap, 1 + sum(c[0] for c in children))
        operands = min(cap, sum(c[1] for c in children) + (len(node.args) if isinstance(node, (sp.Min, sp.Max)) else 0))
        if isinstance(node, sp.Add):
            terms = min(cap, sum(c[2] for c in children))
        elif isinstance(node, sp.Mul):
            terms = 1
            for c in children:
                terms = min(cap, terms * c[2])
        else:
            terms = 1
        worst_terms = max(worst_terms, terms)
        sizes[node] = (nodes, operands, terms)
    nodes, operands, _ = sizes[expr]
    for name, value, what in (("expression_nodes", nodes, "nodes"), ("minmax_operands", operands, "min()/max() operands"),
                              ("expanded_terms", worst_terms, "terms when its products are multiplied out")):
        if value > limit(name):
            raise ExpressionError(f"{where}: with its definitions substituted the expression has {value:.6g} {what}; "
                                  f"{refuse(name)}")


def _shown(text: object) -> str:
    """The user's text as it appears in a message: bounded, so messages stay one line."""
    return shown(text, _SHOWN_LENGTH)


class _Converter:
    """Walks an ast tree, building sympy objects for whitelisted nodes only."""

    def __init__(self, allowed: set[str], where: str, text: str) -> None:
        self.allowed = allowed
        self.where = where
        self.text = text

    def fail(self, what: str, allowed: str = "") -> ExpressionError:
        tail = f"; {allowed}" if allowed else ""
        return ExpressionError(f"{self.where}: {what} in {_shown(self.text)}{tail}")

    def convert(self, node: ast.AST) -> sp.Expr:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise self.fail(f"{node.value!r} is not allowed", "constants must be numbers")
            if isinstance(node.value, float) and not math.isfinite(node.value):
                raise self.fail("a number too large for a float")
            return sp.Float(node.value) if isinstance(node.value, float) else sp.Integer(node.value)
        if isinstance(node, ast.Name):
            return self.convert_name(node.id)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = self.convert(node.left), self.convert(node.right)
            if isinstance(node.op, ast.Pow):
                return self.power(left, right)
            return _BINOPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.convert(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Call):
            return self.convert_call(node)
        if isinstance(node, ast.IfExp):
            cond = self.convert_condition(node.test)
            return sp.Piecewise((self.convert(node.body), cond), (self.convert(node.orelse), True))
        if isinstance(node, ast.Attribute):
            raise self.fail(f"attribute access '.{node.attr}' is not allowed", _ALLOWED_SYNTAX)
        if isinstance(node, ast.Subscript):
            raise self.fail("indexing with [] is not allowed", _ALLOWED_SYNTAX)
        if isinstance(node, (ast.Compare, ast.BoolOp)):
            raise self.fail("a comparison is only allowed as the condition of 'a if cond else b'")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitXor):  # ^ as a power, as in most notations
            raise self.fail("'^' is not a power here", "write powers with '**' (u**2, not u^2)")
        if isinstance(node, ast.BinOp):
            raise self.fail(f"operator {type(node.op).__name__} is not allowed", _ALLOWED_SYNTAX)
        if isinstance(node, ast.UnaryOp):
            raise self.fail(f"operator {type(node.op).__name__} is not allowed", _ALLOWED_SYNTAX)
        raise self.fail(f"{type(node).__name__} is not allowed", _ALLOWED_SYNTAX)

    def convert_name(self, name: str) -> sp.Expr:
        if name in FUNCTIONS:
            raise self.fail(f"function {name!r} used without arguments", f"write {name}(...)")
        if name not in self.allowed:
            known = ", ".join(sorted(self.allowed)) or "(none)"
            hint = difflib.get_close_matches(name, sorted(self.allowed), n=1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise self.fail(f"unknown name {name!r}{did}", f"known names: {known}")
        return sp.Symbol(name, real=True)

    def power(self, base: sp.Expr, exponent: sp.Expr) -> sp.Expr:
        """base**exponent; with two numbers, refuse results no float can hold (e.g. 9**9**9)."""
        if not (base.is_Number and exponent.is_Number):
            return base**exponent
        try:
            value = float(base) ** float(exponent)
        except ZeroDivisionError:
            raise self.fail("division by zero (0 to a negative power)") from None
        except OverflowError:
            raise self.fail("a number too large for a float") from None
        if isinstance(value, complex):
            raise self.fail("a negative number to a fractional power")
        if not math.isfinite(value):
            raise self.fail("a number too large for a float")
        if exponent.is_Integer and abs(value) < _MAX_EXACT_POWER and abs(int(exponent)) <= 1000:
            return base**exponent
        return sp.Float(value)

    def convert_call(self, node: ast.Call) -> sp.Expr:
        if isinstance(node.func, ast.Attribute):
            raise self.fail(f"attribute access '.{node.func.attr}' is not allowed", _ALLOWED_SYNTAX)
        if not isinstance(node.func, ast.Name):
            raise self.fail("only calls of plain function names are allowed", _ALLOWED_SYNTAX)
        name = node.func.id
        allowed = f"allowed functions: {', '.join(sorted(FUNCTIONS))}"
        if name not in FUNCTIONS:
            what = "is not a function" if name in self.allowed else "is not an allowed function"
            raise self.fail(f"{name!r} {what}", allowed)
        if node.keywords:
            raise self.fail(f"keyword arguments to {name}() are not allowed")
        lo, hi = _ARITY.get(name, (1, 1))
        n = len(node.args)
        if n < lo or (hi is not None and n > hi):
            expected = f"{lo}" if lo == hi else f"at least {lo}"
            raise self.fail(f"{name}() takes {expected} argument(s), got {n}")
        args = [self.convert(a) for a in node.args]
        if name == "pow":
            return self.power(*args)
        return FUNCTIONS[name](*args)

    def convert_condition(self, node: ast.AST) -> sp.Basic:
        if isinstance(node, ast.BoolOp):
            parts = [self.convert_condition(v) for v in node.values]
            return sp.And(*parts) if isinstance(node.op, ast.And) else sp.Or(*parts)
        if isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) not in _COMPARE:
                    symbol = _COMPARE_SYMBOLS.get(type(op), type(op).__name__)
                    raise self.fail(f"comparison {symbol!r} is not allowed", "use < <= > >=")
            terms = [self.convert(node.left)] + [self.convert(c) for c in node.comparators]
            return sp.And(
                *(_COMPARE[type(op)](a, b) for op, a, b in zip(node.ops, terms, terms[1:]))
            )
        raise self.fail(
            "the condition of 'a if cond else b' must be a comparison",
            "use < <= > >=, joined by and/or",
        )


def parse_condition(text: str, allowed_names: Iterable[str], where: str) -> sp.Basic:
    """Parse a condition such as "T > 1e6" (comparisons joined by and/or) through the whitelist.

    Returns a sympy relational or boolean (sympy.true / sympy.false when it is constant).
    """
    if not isinstance(text, str):
        raise ExpressionError(f"{where}: expected a condition such as \"T > 1e6\", got {text!r}")
    # Parsed as the condition of a conditional expression, the one place comparisons are allowed.
    expr = parse_expression(f"1 if ({text}) else 0", allowed_names, where)
    if isinstance(expr, sp.Piecewise):
        return expr.args[0].cond
    return sp.true if expr == 1 else sp.false
