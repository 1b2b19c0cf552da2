"""The transport stencil of one cell, written once and printed for every backend.

Public API:
    transport_program(model, grid, implicit_diffusion, implicit_chemotaxis) -> TransportProgram
    GhostRule, ghost_rule(face, diffusion, h)     the value outside a face (FaceBC's affine rule)
    Expression nodes: Num, Centre, Neighbour, InvH, Coefficient, Bin, Neg, Upwind, OffFace, Ref
    StencilPrinter                                 base of the per-target printers
    reaction_terms(model, implicit_sinks) -> ReactionTerms   R_i and lambda_i, CSE shared
    local_name(symbol, model) -> str               what every printer calls a model symbol
    with_power_ratios(terms) -> (temps, rates, sinks)  a**e * b**-e as one PowRatio(a, b, e)
    ArrayEvaluator                                 the stencil on whole arrays (NumPy reference)

Every backend steps

    du/dt = D lap u - div(chi u grad s) + R(u, ...)

with the same discrete operators (LeVeque, Finite Volume Methods, 2002, ch. 4 and 20 for
the first-order upwind flux):

    lap u   = sum_axes ((u_m + u_p) - 2 u_c) / h^2
    chemo   = -sum_axes (F_p - F_m) / h,   F_p = v_p u_upwind,  v_p = chi (s_p - s_c) / h
    F = 0 through the faces that stop advection (FaceBC.stops_advection)

and the ghost values of solver/grid.py outside each face. This module states those
operators once, as a small expression tree per species; solver/backends/cuda_codegen.py
prints it as CUDA, solver/backends/cpu_codegen.py as a compiled (numba) CPU kernel and as
the NumPy reference's array statements. The reaction terms come from the model's sympy
expressions; the printers add them as `(transport) + (reaction)`, in that order, so every
target performs the same floating-point operations in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from solver.grid import AXES, FaceBC, Grid
from solver.model import Model


@dataclass(frozen=True)
class GhostRule:
    """The value outside one face: `wrap` (periodic: the opposite edge cell), `edge` (the
    edge cell itself: no-flux), `reflect` (beta - u_edge: a fixed value g, beta = 2 g) or
    `affine` (alpha u_edge + beta: permeable). alpha and beta are FaceBC.ghost_coefficients."""

    kind: str
    alpha: float = 1.0
    beta: float = 0.0


def ghost_rule(face: FaceBC, diffusion: float, h: float, by_value: bool = True) -> GhostRule:
    """The ghost rule of one face. `by_value`: simplify by the coefficients' values (a
    permeable face with P = 0 or D = 0 is an edge copy), as a kernel with the numbers baked
    in can; without it the kind alone decides, so a kernel that takes the coefficients at
    run time serves every value."""
    if face.kind == "periodic":
        return GhostRule("wrap")
    if face.kind == "no-flux":
        return GhostRule("edge")
    alpha, beta = face.ghost_coefficients(diffusion, h)
    if by_value and alpha == 1.0 and beta == 0.0:
        return GhostRule("edge")
    if face.kind == "value":
        return GhostRule("reflect", alpha, beta)
    return GhostRule("affine", alpha, beta)


# Expression nodes. Each printer turns them into its target's syntax; none reorders them.
@dataclass(frozen=True)
class Num:
    """A literal in the working precision."""

    value: float


@dataclass(frozen=True)
class Centre:
    """Species s in this cell."""

    s: int


@dataclass(frozen=True)
class Neighbour:
    """Species s in the next cell along `axis` (side 0: lower index, 1: higher), or its
    ghost value `rule` when this cell is on that face."""

    s: int
    axis: int
    side: int
    rule: GhostRule


@dataclass(frozen=True)
class InvH:
    """1 / h (power 1) or 1 / h^2 (power 2) of one axis."""

    axis: int
    power: int


@dataclass(frozen=True)
class Coefficient:
    """A species' constant: `diffusion` (D) or `sensitivity` (chi)."""

    s: int
    what: str


@dataclass(frozen=True)
class Bin:
    """a op b, op one of + - *."""

    op: str
    a: object
    b: object


@dataclass(frozen=True)
class Neg:
    """-a."""

    a: object


@dataclass(frozen=True)
class Upwind:
    """(v > 0) ? v * if_positive : v * otherwise: the flux of a face velocity v."""

    v: object
    if_positive: object
    otherwise: object


@dataclass(frozen=True)
class OffFace:
    """`a`, except 0 in the cells on the face (axis, side)."""

    axis: int
    side: int
    a: object


@dataclass(frozen=True)
class Ref:
    """A value named by an earlier statement."""

    name: str


@dataclass(frozen=True)
class SpeciesTransport:
    """The transport of one species: statements (name, expression) to evaluate in order,
    and the names of its diffusion term (D lap u) and of its whole transport (or None)."""

    statements: tuple[tuple[str, object], ...]
    diffusion: str | None
    total: str | None


@dataclass(frozen=True)
class TransportProgram:
    """Per species, what to evaluate; and which species are read at their neighbours."""

    species: tuple[SpeciesTransport, ...]
    neighbours: tuple[tuple[int, int, int, GhostRule], ...]  # (s, axis, side, rule) read anywhere


def diffusion_axes(model: Model, grid: Grid, s: int) -> list[int]:
    """Axes along which species s's neighbours can differ from its own value: one cell
    between no-flux or periodic faces gives (u + u - 2u) = 0 exactly, so skipping the axis
    changes no bit of the result and saves the work on thin grids."""
    species = model.species[s]
    return [a for a in range(3) if grid.shape[a] > 1
            or species.boundary.face(a, 0).kind in ("value", "permeable")
            or species.boundary.face(a, 1).kind in ("value", "permeable")]


def transport_program(
    model: Model, grid: Grid, implicit_diffusion: frozenset[int] = frozenset(),
    implicit_chemotaxis: frozenset[int] = frozenset(), by_value: bool = True,
) -> TransportProgram:
    """The explicit transport of every species (none for those an IMEX step solves
    implicitly: `implicit_diffusion` drops the diffusion term, `implicit_chemotaxis` the
    chemotaxis term). `by_value`: see ghost_rule."""

    def neighbour(s: int, axis: int, side: int) -> Neighbour:
        face = model.species[s].boundary.face(axis, side)
        return Neighbour(s, axis, side, ghost_rule(face, model.species[s].diffusion, grid.spacing[axis], by_value))

    out = []
    read: dict[tuple[int, int, int], GhostRule] = {}
    for s, species in enumerate(model.species):
        n = species.name
        statements: list[tuple[str, object]] = []
        parts: list[object] = []
        diffusion = None
        if species.diffusion > 0 and s not in implicit_diffusion and diffusion_axes(model, grid, s):
            lap = None
            for a in diffusion_axes(model, grid, s):
                lo, hi = neighbour(s, a, 0), neighbour(s, a, 1)
                term = Bin("*", Bin("-", Bin("+", lo, hi), Bin("*", Num(2.0), Centre(s))), InvH(a, 2))
                lap = term if lap is None else Bin("+", lap, term)
                for nb in (lo, hi):
                    read[(nb.s, nb.axis, nb.side)] = nb.rule
            statements.append((f"lap_{n}", lap))
            diffusion = f"diff_{n}"
            statements.append((diffusion, Bin("*", Coefficient(s, "diffusion"), Ref(f"lap_{n}"))))
            parts.append(Ref(diffusion))
        if species.chemotaxis is not None and s not in implicit_chemotaxis:
            sig = species.chemotaxis.signal
            div = None
            for a, ax in enumerate(AXES):
                sp_, sm = neighbour(sig, a, 1), neighbour(sig, a, 0)
                up, um = neighbour(s, a, 1), neighbour(s, a, 0)
                for nb in (sp_, sm, up, um):
                    read[(nb.s, nb.axis, nb.side)] = nb.rule
                chi = Coefficient(s, "sensitivity")
                vp, vm = f"vp_{n}_{ax}", f"vm_{n}_{ax}"
                statements.append((vp, Bin("*", chi, Bin("*", Bin("-", sp_, Centre(sig)), InvH(a, 1)))))
                statements.append((vm, Bin("*", chi, Bin("*", Bin("-", Centre(sig), sm), InvH(a, 1)))))
                fp: object = Upwind(Ref(vp), Centre(s), up)
                fm: object = Upwind(Ref(vm), um, Centre(s))
                if species.boundary.face(a, 1).stops_advection:
                    fp = OffFace(a, 1, fp)
                if species.boundary.face(a, 0).stops_advection:
                    fm = OffFace(a, 0, fm)
                statements.append((f"fp_{n}_{ax}", fp))
                statements.append((f"fm_{n}_{ax}", fm))
                term = Bin("*", Bin("-", Ref(f"fp_{n}_{ax}"), Ref(f"fm_{n}_{ax}")), InvH(a, 1))
                div = term if div is None else Bin("+", div, term)
            statements.append((f"chemo_{n}", Neg(div)))
            parts.append(Ref(f"chemo_{n}"))
        total = None
        if parts:
            expr = parts[0] if len(parts) == 1 else Bin("+", parts[0], parts[1])
            total = f"transport_{n}"
            statements.append((total, expr))
        out.append(SpeciesTransport(tuple(statements), diffusion, total))
    neighbours = tuple((s, a, side, rule) for (s, a, side), rule in sorted(read.items()))
    return TransportProgram(tuple(out), neighbours)


class StencilPrinter:
    """Prints expression nodes; a target supplies the leaves and the two conditionals."""

    def expr(self, node: object) -> str:
        if isinstance(node, Bin):
            return f"({self.expr(node.a)} {node.op} {self.expr(node.b)})"
        if isinstance(node, Neg):
            return f"-{self.expr(node.a)}"
        if isinstance(node, Num):
            return self.number(node.value)
        if isinstance(node, Ref):
            return node.name
        if isinstance(node, Centre):
            return self.centre(node.s)
        if isinstance(node, Neighbour):
            return self.neighbour(node)
        if isinstance(node, InvH):
            return self.inv_h(node.axis, node.power)
        if isinstance(node, Coefficient):
            return self.coefficient(node.s, node.what)
        if isinstance(node, Upwind):
            return self.upwind(self.expr(node.v), self.expr(node.if_positive), self.expr(node.otherwise))
        if isinstance(node, OffFace):
            return self.off_face(node.axis, node.side, self.expr(node.a))
        raise TypeError(f"not a stencil node: {node!r}")

    def number(self, value: float) -> str:
        raise NotImplementedError

    def centre(self, s: int) -> str:
        raise NotImplementedError

    def neighbour(self, node: Neighbour) -> str:
        raise NotImplementedError

    def inv_h(self, axis: int, power: int) -> str:
        raise NotImplementedError

    def coefficient(self, s: int, what: str) -> str:
        raise NotImplementedError

    def upwind(self, v: str, if_positive: str, otherwise: str) -> str:
        raise NotImplementedError

    def off_face(self, axis: int, side: int, a: str) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class ReactionTerms:
    """The reaction terms R_i and sink rates lambda_i of every species, written in the
    printers' names (`name` of each symbol), common subexpressions shared: evaluate
    `temps` in order, then `rates[i]` and `sinks[i]` (0 where there is none)."""

    used: frozenset
    temps: tuple[tuple[object, object], ...]
    rates: tuple[object, ...]
    sinks: tuple[object, ...]


def local_name(symbol, model: Model) -> str:
    """The local variable every printer gives a model symbol: c_<species>, m_<map>,
    s_<systemic scalar>, t, and xc, yc, zc for the cell centre."""
    name = str(symbol)
    if name in model.names:
        return f"c_{name}"
    if name in model.map_names:
        return f"m_{name}"
    if name in model.systemic_names:
        return f"s_{name}"
    return {"t": "t", "x": "xc", "y": "yc", "z": "zc"}[name]


def reaction_terms(model: Model, implicit_sinks: bool) -> ReactionTerms:
    """R_i (and lambda_i with implicit_sinks: Model.loss_rates) of every species, with the
    model's symbols renamed to their local_name and integer powers up to 4 written as
    products, whatever the base (no pow call in the hot loop: (1 + x)**2 -> (1 + x)*(1 + x),
    after cse, which would undo it)."""
    from sympy.codegen.rewriting import create_expand_pow_optimization

    expand = create_expand_pow_optimization(4, base_req=lambda base: True)
    sinks = model.loss_rates() if implicit_sinks else [sp.Integer(0)] * len(model.species)
    used = frozenset().union(*(e.free_symbols for e in [*(s.reaction for s in model.species), *sinks]))
    subs = {sym: sp.Symbol(local_name(sym, model), real=True) for sym in used}
    exprs = [s.reaction.xreplace(subs) for s in model.species] + [e.xreplace(subs) for e in sinks]
    temps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("tmp_"), optimizations="basic")
    reduced = [expand(r) for r in reduced]
    n = len(model.species)
    return ReactionTerms(used, tuple((sym, expand(e)) for sym, e in temps), tuple(reduced[:n]), tuple(reduced[n:]))


def _refs(node: object) -> list[str]:
    if isinstance(node, Ref):
        return [node.name]
    return [name for child in vars(node).values() if not isinstance(child, (int, float, str, GhostRule))
            for name in _refs(child)] if hasattr(node, "__dataclass_fields__") else []


def _last_uses(transport: SpeciesTransport) -> dict[int, list[str]]:
    """Statement index -> the names whose last use it is."""
    last: dict[str, int] = {}
    for n, (_, expr) in enumerate(transport.statements):
        for name in _refs(expr):
            last[name] = n
    out: dict[int, list[str]] = {}
    for name, n in last.items():
        out.setdefault(n, []).append(name)
    return out


class ArrayEvaluator:
    """Evaluates the transport stencil on whole arrays of an array module `xp` (NumPy for
    the reference backend, CuPy or jax for the benchmark's peers): the same nodes, the
    same order of operations as the printed kernels, every value a grid-sized array.

    A target supplies centre(s) and neighbour(node) (its own ghost handling); off_face
    zeroes the face layer in place (a fresh array from the Upwind before it) where the
    array module allows it, else with a mask.
    """

    def __init__(self, model: Model, grid: Grid, dtype, xp) -> None:
        import numpy as np

        self.model, self.grid, self.xp = model, grid, xp
        self.cast = np.dtype(dtype).type
        self.inv_h = [self.cast(1.0 / h) for h in grid.spacing]
        self.inv_h2 = [self.cast(1.0 / (h * h)) for h in grid.spacing]
        self.in_place = xp is np

    def run(self, transport: SpeciesTransport, values: dict) -> dict:
        """Evaluate one species' statements into `values` (name -> array); returns it, with
        each intermediate dropped after its last use (only the diffusion term and the total
        are kept): grid-sized temporaries freed as soon as they can be are reused by the
        allocator, as a hand-written expression's would be."""
        keep = {transport.total, transport.diffusion}
        last = _last_uses(transport)
        for n, (name, expr) in enumerate(transport.statements):
            values[name] = self.eval(expr, values)
            for done in last.get(n, ()):
                if done not in keep:
                    del values[done]
        return values

    def eval(self, node: object, values: dict):
        if isinstance(node, Bin):
            a, b = self.eval(node.a, values), self.eval(node.b, values)
            return a + b if node.op == "+" else a - b if node.op == "-" else a * b
        if isinstance(node, Neg):
            return -self.eval(node.a, values)
        if isinstance(node, Ref):
            return values[node.name]
        if isinstance(node, Num):
            return self.cast(node.value)
        if isinstance(node, Centre):
            return self.centre(node.s)
        if isinstance(node, Neighbour):
            return self.neighbour(node)
        if isinstance(node, InvH):
            return (self.inv_h2 if node.power == 2 else self.inv_h)[node.axis]
        if isinstance(node, Coefficient):
            species = self.model.species[node.s]
            return self.cast(species.diffusion if node.what == "diffusion" else species.chemotaxis.sensitivity)
        if isinstance(node, Upwind):
            v = self.eval(node.v, values)
            return self.xp.where(v > self.cast(0), v * self.eval(node.if_positive, values),
                                 v * self.eval(node.otherwise, values))
        if isinstance(node, OffFace):
            return self.off_face(node.axis, node.side, self.eval(node.a, values))
        raise TypeError(f"not a stencil node: {node!r}")

    def centre(self, s: int):
        raise NotImplementedError

    def neighbour(self, node: Neighbour):
        raise NotImplementedError

    def off_face(self, axis: int, side: int, a):
        index = [slice(None)] * 3
        index[axis] = -1 if side == 1 else 0
        if self.in_place:
            a[tuple(index)] = self.cast(0)
            return a
        mask = self.xp.ones(self.grid.shape, dtype=bool)
        if hasattr(mask, "at"):  # jax arrays are immutable
            mask = mask.at[tuple(index)].set(False)
        else:
            mask[tuple(index)] = False
        return self.xp.where(mask, a, self.cast(0))


class PowRatio(sp.Function):
    """(a / b)**e kept as one power: sympy splits it into a**e * b**-e (two pow calls) when
    it knows a, b >= 0 (e.g. max(0, T) / max(1e-6, L)). Only made for |e| >= 1, where a / b
    overflows (underflows) only if (a / b)**e does too."""

    nargs = 3


def merge_power_ratios(expr: sp.Expr) -> sp.Expr:
    """a**e * b**-e -> PowRatio(a, b, e) in every product, e a non-integer number, |e| >= 1."""

    def merged(mul: sp.Mul) -> sp.Expr:
        powers = [f for f in mul.args if f.is_Pow and f.exp.is_Number and not f.exp.is_Integer and abs(f.exp) >= 1]
        rest = [f for f in mul.args if f not in powers]
        used: set[int] = set()
        for n, num in enumerate(powers):
            if n in used or num.exp < 0:
                continue
            for m, den in enumerate(powers):
                if m not in used and m != n and den.exp == -num.exp:
                    used |= {n, m}
                    rest.append(PowRatio(num.base, den.base, num.exp))
                    break
        rest += [f for n, f in enumerate(powers) if n not in used]
        return sp.Mul(*rest, evaluate=False) if used else mul

    return expr.replace(lambda e: e.is_Mul, merged)


def _is_merge_candidate(expr: sp.Expr) -> bool:
    return bool(expr.is_Pow and expr.exp.is_Number and not expr.exp.is_Integer and abs(expr.exp) >= 1)


def with_power_ratios(terms: ReactionTerms) -> tuple[list, list, list]:
    """(temps, rates, sinks) of stencil.reaction_terms with a**e * b**-e merged
    (merge_power_ratios). Where the common-subexpression pass made a**e and b**-e temps of
    their own, those are put back into their uses first, merged there, and the merged
    powers shared again by a second pass (integer powers re-expanded after it, as
    reaction_terms does)."""
    from sympy.codegen.rewriting import create_expand_pow_optimization

    powers = {sym: e for sym, e in terms.temps if _is_merge_candidate(e)}
    if not powers:
        merge = merge_power_ratios
        return ([(sym, merge(e)) for sym, e in terms.temps], [merge(e) for e in terms.rates],
                [merge(e) for e in terms.sinks])
    temps = [(sym, merge_power_ratios(e.xreplace(powers))) for sym, e in terms.temps if sym not in powers]
    n = len(terms.rates)
    exprs = [merge_power_ratios(e.xreplace(powers)) for e in (*terms.rates, *terms.sinks)]
    shared, exprs = sp.cse([e for _, e in temps] + exprs, symbols=sp.numbered_symbols("pow_"), optimizations=None)
    expand = create_expand_pow_optimization(4, base_req=lambda base: True)
    own = [(sym, expand(e)) for (sym, _), e in zip(temps, exprs)]
    exprs = [expand(e) for e in exprs[len(own):]]
    return _in_dependency_order(own + [(sym, expand(e)) for sym, e in shared]), exprs[:n], exprs[n:]


def _in_dependency_order(temps: list[tuple[sp.Symbol, sp.Expr]]) -> list[tuple[sp.Symbol, sp.Expr]]:
    """The temps reordered so that each comes after the temps it uses (depth first, in the
    given order otherwise)."""
    value = dict(temps)
    ordered: list[tuple[sp.Symbol, sp.Expr]] = []
    done: set[sp.Symbol] = set()

    def visit(sym: sp.Symbol) -> None:
        if sym in done:
            return
        done.add(sym)
        for dep in sorted(value[sym].free_symbols & value.keys(), key=str):
            visit(dep)
        ordered.append((sym, value[sym]))

    for sym, _ in temps:
        visit(sym)
    return ordered
