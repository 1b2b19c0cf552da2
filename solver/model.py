"""The model in symbolic form: species, parameters, static maps and reaction terms.

Public API:
    build_model(config) -> Model
    treatment_specs(config) -> list[DoseSpec]   doses in each agent's unit (per_m2 applied)
    Model, Species, Chemotaxis, SystemicVariable, Agent, Diagnostic, GlobalQuantity
    Model.arguments() -> list of symbols   the argument order of every generated evaluation
    Model.neighbour_species(...)           which species a transport stencil reads around a cell
    Model.loss_rates(), Model.reaction_jacobian_diagonal()
    TIME, COORDS                           the symbols t and x, y, z

Static sources (maps, initial fields) stay descriptions here; solver/fields/static.py
evaluates them on the grid, once per run.

Each species u_i obeys

    du_i/dt = D_i lap(u_i) - div(chi_i u_i grad s_i) + R_i(u, maps, t, x, y, z)

Parameters are numbers substituted into the expressions here, so every backend
receives one sympy expression per species with only species, maps, t and x, y, z
left as symbols. The CUDA code and the NumPy evaluation are both generated from
that one expression, so the two backends cannot drift apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sympy as sp

from solver.config import FileSource, PKConfig, RunConfig, RunSource, TumourSource, VesselSource
from solver.errors import ConfigError
from solver.expressions import check_expression_size, parse_condition, parse_expression
from solver.grid import AXES, BoundaryConditions
from solver.model_units import RunUnits, run_units
from solver.systemic.pk import PlasmaPK, half_life_to_rate
from solver.systemic.schedule import DoseSpec, Schedule, expand_schedule

log = logging.getLogger(__name__)

TIME = sp.Symbol("t", real=True)
COORDS = tuple(sp.Symbol(a, real=True) for a in AXES)

# Names every expression may use, set by the grid (in its length unit cubed).
GRID_CONSTANTS = {"domain_volume": "volume (product of its extents)", "cell_volume": "cell volume"}


def grid_constants(config: RunConfig) -> dict[str, float]:
    """domain_volume and cell_volume of the config's grid, in its length unit cubed."""
    spacing = config.grid.spacing3
    cell = float(spacing[0] * spacing[1] * spacing[2])
    return {"domain_volume": cell * float(np.prod(config.grid.shape)), "cell_volume": cell}


@dataclass(frozen=True)
class Chemotaxis:
    """Flux chi * u * grad(s) of this species up the gradient of species `signal`."""

    signal: int
    sensitivity: float


@dataclass(frozen=True)
class Species:
    """One field: constant diffusion, a reaction expression, boundary and initial data."""

    name: str
    diffusion: float
    reaction: sp.Expr
    boundary: BoundaryConditions
    initial: StaticSource
    chemotaxis: Chemotaxis | None = None
    nonnegative: bool = True
    units: str = ""

    @property
    def symbol(self) -> sp.Symbol:
        return sp.Symbol(self.name, real=True)


@dataclass(frozen=True)
class SystemicVariable:
    """A scalar of the whole body (e.g. circulating lymphocytes C): dy/dt = rate(t, y, agents)."""

    name: str
    initial: float
    rate: sp.Expr
    units: str = ""


@dataclass(frozen=True)
class Agent:
    """A treatment agent. With `pk`, its symbol is the plasma concentration; without,
    the symbol is the current infusion rate of its schedule (e.g. adoptive T-cell transfer)."""

    name: str
    pk: PlasmaPK | None = None
    units: str = ""
    dose_units: str = ""


@dataclass(frozen=True)
class Diagnostic:
    """A recorded scalar: kind "integral" (sum of expr * cell volume over cells where
    `where` holds), "mean" (that integral over the volume where it holds), or "auc"
    (time integral of the diagnostic `of`)."""

    name: str
    kind: str
    expr: sp.Expr | None = None
    where: sp.Basic | None = None
    of: str | None = None
    units: str = ""


@dataclass(frozen=True)
class GlobalQuantity:
    """A scalar recomputed from the fields at every stage of every step: the integral of
    `expr` (species, maps, t, x, y, z, systemic scalars and agents) over the domain, or,
    with integral False, `expr` of the globals before it (evaluated in float64 on the
    host). Reactions read it like a systemic scalar (solver/integrators/globals.py)."""

    name: str
    expr: sp.Expr
    units: str = ""
    integral: bool = True


StaticSource = sp.Expr | FileSource | VesselSource | TumourSource | RunSource


@dataclass(frozen=True)
class Model:
    """All species, static maps and systemic scalars of a run, parameters substituted."""

    species: tuple[Species, ...]
    parameters: dict[str, float]
    maps: dict[str, StaticSource] = field(default_factory=dict)
    base_dir: Path = Path(".")
    systemic: tuple[SystemicVariable, ...] = ()
    agents: tuple[Agent, ...] = ()
    schedule: Schedule | None = None
    diagnostics: tuple[Diagnostic, ...] = ()
    globals: tuple[GlobalQuantity, ...] = ()
    units: RunUnits = field(default_factory=lambda: RunUnits("", ""))  # the run's time and length units

    @property
    def time_unit(self) -> str:
        """Of t, every rate and every time series."""
        return self.units.time

    @property
    def length_unit(self) -> str:
        """Of the grid and every length."""
        return self.units.length

    @property
    def systemic_names(self) -> tuple[str, ...]:
        """Names of the scalars handed to every step, in kernel-argument order: systemic
        ODE values, agents, then the global quantities reduced from the fields."""
        return (tuple(v.name for v in self.systemic) + tuple(a.name for a in self.agents)
                + tuple(g.name for g in self.globals))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.species)

    @property
    def map_names(self) -> tuple[str, ...]:
        return tuple(self.maps)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def reaction_jacobian_diagonal(self) -> list[sp.Expr]:
        """dR_i/du_i for each species: the local linear rate that bounds an explicit dt."""
        return [_without_distributions(sp.diff(s.reaction, s.symbol)) for s in self.species]

    def loss_rates(self) -> list[sp.Expr]:
        """lambda_i >= 0 with R_i = (rest) - lambda_i u_i for the loss terms of R_i.

        Term by term (top-level sum of R_i): a term with u_i as a factor, term = u_i g, with
        g finite at u_i = 0, contributes max(0, -g): decay, vessel exchange, drug kill, and
        nonlinear losses such as -u N L^2 (lagged: g = -u N L) or Michaelis-Menten uptake
        -q T O / (K + O) (g = -q T / (K + O)). Growth terms (g > 0) and terms without u_i
        as a factor stay explicit. No derivative of a saturating term is
        evaluated (they overflow float32 easily).
        """
        out = []
        for s in self.species:
            u = s.symbol
            rate = sp.Integer(0)
            for term in sp.Add.make_args(sp.expand_mul(s.reaction)):
                if not term.has(u):
                    continue
                g = term / u  # sympy cancels u when it is a factor of the product
                denominator = sp.denom(g)
                if denominator.has(u) and denominator.subs(u, 0) == 0:
                    continue  # not a factor: g would be singular at u = 0 (e.g. sqrt(u))
                rate += -g if (-g).is_nonnegative else sp.Max(-g, 0)
            out.append(rate)
        return out


    def arguments(self) -> list[sp.Symbol]:
        """The argument order of every generated evaluation (reactions, sinks, diagnostics):
        species, maps, t, x, y, z, then the systemic scalars."""
        return [s.symbol for s in self.species] + [sp.Symbol(m, real=True) for m in self.map_names] + [
            TIME, *COORDS, *(sp.Symbol(n, real=True) for n in self.systemic_names)
        ]

    def neighbour_species(
        self, implicit_diffusion: frozenset[int] = frozenset(), implicit_chemotaxis: frozenset[int] = frozenset()
    ) -> list[bool]:
        """Per species: does an explicit step read its neighbours? Yes when it diffuses
        explicitly or moves by explicit chemotaxis, and for the signal of such a movement."""
        explicit_chemotaxis = [s.chemotaxis is not None and i not in implicit_chemotaxis
                               for i, s in enumerate(self.species)]
        need = [(s.diffusion > 0 and i not in implicit_diffusion) or explicit_chemotaxis[i]
                for i, s in enumerate(self.species)]
        for i, s in enumerate(self.species):
            if explicit_chemotaxis[i]:
                need[s.chemotaxis.signal] = True
        return need


def _without_distributions(expr: sp.Expr) -> sp.Expr:
    """Heaviside and sign (derivatives of max, min, abs) as Piecewise, which both code
    printers handle; H(0) = 1/2 and sign(0) = 0 as in sympy."""
    expr = expr.replace(sp.Heaviside, lambda x, *rest: sp.Piecewise(
        (sp.Integer(1), x > 0), (sp.Integer(0), x < 0), (sp.Rational(1, 2), True)))
    return expr.replace(sp.sign, lambda x: sp.Piecewise(
        (sp.Integer(1), x > 0), (sp.Integer(-1), x < 0), (sp.Integer(0), True)))


def build_model(config: RunConfig) -> Model:
    """Parse every expression of the config through the whitelist and resolve names.

    Raises:
        ConfigError: unknown names, malformed expressions, negative diffusion, a
            chemotaxis signal that is not a species.
    """
    mc = config.model
    units = run_units(config)  # the model converted into the config's time and length units
    declared = mc.units.parameters if mc.units is not None else {}
    user_params = {k: units.parameter(k, float(v), declared) for k, v in mc.parameters.items()}
    reserved = [k for k in GRID_CONSTANTS if k in user_params]
    if reserved:
        raise ConfigError(f"model.parameters.{reserved[0]}: the name is reserved for the grid's "
                          f"{GRID_CONSTANTS[reserved[0]]}; choose another")
    # the grid constants read like parameters in every expression
    params = {**user_params, **grid_constants(config)}
    param_syms = {sp.Symbol(k, real=True): sp.Float(v) for k, v in params.items()}
    species_names = list(mc.species)
    map_names = list(mc.maps)
    _check_distinct({"species": species_names, "parameter": list(params), "map": map_names})

    def constant(text: object, where: str) -> float:
        expr = parse_expression(text, params, where).xreplace(param_syms)
        if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
            raise ConfigError(f"{where}: evaluates to an infinite value (division by zero?)")
        try:
            value = float(expr)
        except TypeError:
            raise ConfigError(f"{where}: must evaluate to a number, got {expr}") from None
        if not np.isfinite(value):
            raise ConfigError(f"{where}: evaluates to {value} (division by zero?)")
        return value

    static_names = [*params, *AXES]
    maps: dict[str, StaticSource] = {}
    for name, spec in mc.maps.items():
        maps[name] = spec if not isinstance(spec, (str, int, float)) else parse_expression(
            spec, static_names, f"model.maps.{name}"
        ).xreplace(param_syms)

    systemic_vars = [*mc.systemic]
    agent_names = [*mc.agents]
    global_names = [*mc.globals]
    _check_distinct({"species": species_names, "parameter": list(params), "map": map_names,
                     "systemic": systemic_vars, "agent": agent_names, "global": global_names})
    systemic = tuple(
        SystemicVariable(
            name=name,
            initial=constant(sc.initial, f"model.systemic.{name}.initial"),
            rate=parse_expression(sc.rate, [*params, "t", *systemic_vars, *agent_names],
                                  f"model.systemic.{name}.rate").xreplace(param_syms),
            units=units.label(sc.units),
        )
        for name, sc in mc.systemic.items()
    )
    agents = tuple(Agent(name, _plasma_pk(name, ac.pk, constant), units.label(ac.units), ac.dose_units)
                   for name, ac in mc.agents.items())

    # an integral is reduced from the fields, so it cannot depend on another global; a
    # value is computed from the globals before it
    global_inputs = [*species_names, *params, *map_names, "t", *AXES, *systemic_vars, *agent_names]
    globals_list: list[GlobalQuantity] = []
    for name, gc in mc.globals.items():
        if gc.integral is not None:
            expr = parse_expression(gc.integral, global_inputs, f"model.globals.{name}.integral")
        else:
            expr = parse_expression(gc.value, [*params, *(g.name for g in globals_list)], f"model.globals.{name}.value")
        globals_list.append(GlobalQuantity(name, expr.xreplace(param_syms), units.label(gc.units),
                                           gc.integral is not None))
    globals_ = tuple(globals_list)
    reaction_names = [*global_inputs, *global_names]
    definitions: dict[sp.Symbol, sp.Expr] = {}
    _check_distinct({"name": reaction_names, "definition": list(mc.definitions)})
    for name, text in mc.definitions.items():
        expr = parse_expression(text, reaction_names, f"model.definitions.{name}")
        definitions[sp.Symbol(name, real=True)] = expr.xreplace(definitions).xreplace(param_syms)
        reaction_names.append(name)
    species = []
    for name, sc in mc.species.items():
        where = f"model.species.{name}"
        diffusion = constant(sc.diffusion, f"{where}.diffusion")
        if diffusion < 0:
            raise ConfigError(f"{where}.diffusion = {diffusion:g}; diffusion must be >= 0")
        reaction = parse_expression(sc.reaction, reaction_names, f"{where}.reaction")
        reaction = reaction.xreplace(definitions).xreplace(param_syms)
        if reaction.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
            raise ConfigError(f"{where}.reaction: evaluates to an infinite value (division by zero?)")
        if "initial" not in sc.model_fields_set:  # legitimate (a drug not yet given), but often a slip
            log.warning("species %s has no initial: starts at 0 (initial: 0 says so and silences this)", name)
        initial = sc.initial if not isinstance(sc.initial, (str, int, float)) else parse_expression(
            sc.initial, [*static_names, *map_names], f"{where}.initial"
        ).xreplace(param_syms)
        chemo = None
        if sc.chemotaxis is not None:
            if sc.chemotaxis.signal not in species_names:
                raise ConfigError(
                    f"{where}.chemotaxis.signal: {sc.chemotaxis.signal!r} is not a species; species: {', '.join(species_names)}"
                )
            chemo = Chemotaxis(
                signal=species_names.index(sc.chemotaxis.signal),
                sensitivity=constant(sc.chemotaxis.sensitivity, f"{where}.chemotaxis.sensitivity"),
            )
        species.append(
            Species(
                name=name,
                diffusion=diffusion,
                reaction=reaction,
                boundary=BoundaryConditions.from_config(sc.boundary),
                initial=initial,
                chemotaxis=chemo,
                nonnegative=sc.nonnegative,
                units=sc.units,
            )
        )
    diagnostics = _diagnostics(mc, reaction_names, {**param_syms, **definitions}, units.label)
    _check_sizes(species, systemic, diagnostics)
    schedule = _schedule(config, agent_names, params)
    _check_periodic_consistency(species)
    return Model(tuple(species), user_params, maps, config.base_dir, systemic, agents, schedule, diagnostics,
                 globals_, units)


def _check_sizes(species: list[Species], systemic: tuple[SystemicVariable, ...],
                 diagnostics: tuple[Diagnostic, ...]) -> None:
    """Every expression the backends and the stability bound work on, within the limits on
    symbolic work (solver/limits.py), with its definitions substituted."""
    for s in species:
        check_expression_size(s.reaction, f"model.species.{s.name}.reaction")
    for v in systemic:
        check_expression_size(v.rate, f"model.systemic.{v.name}.rate")
    for d in diagnostics:
        for part, expr in (("expression", d.expr), ("where", d.where)):
            if expr is not None:
                check_expression_size(expr, f"model.diagnostics.{d.name} ({part})")


def _check_distinct(groups: dict[str, list[str]]) -> None:
    seen: dict[str, str] = {}
    for what, names in groups.items():
        for name in names:
            if name in seen:
                raise ConfigError(
                    f"model: {name!r} is both a {seen[name]} and a {what} name; names must be distinct"
                )
            seen[name] = what


def _plasma_pk(name: str, pk: PKConfig | None, constant) -> PlasmaPK | None:
    """The agent's PlasmaPK from its config, parameter expressions evaluated."""
    if pk is None:
        return None
    where = f"model.agents.{name}.pk"
    if (pk.k_el is None) == (pk.half_life is None):
        raise ConfigError(f"{where}: give exactly one of k_el and half_life")
    k_el = (constant(pk.k_el, f"{where}.k_el") if pk.k_el is not None
            else half_life_to_rate(constant(pk.half_life, f"{where}.half_life")))
    optional = {k: constant(getattr(pk, k), f"{where}.{k}")
                for k in ("k12", "k21", "volume_peripheral", "k13", "k31", "volume_peripheral2")
                if getattr(pk, k) is not None}
    return PlasmaPK(model=pk.model, volume=constant(pk.volume, f"{where}.volume"), k_el=k_el,
                    label=where, **optional)


def _diagnostics(mc, names: list[str], substitutions: dict, label) -> tuple[Diagnostic, ...]:
    """Diagnostics with definitions and parameters substituted (definitions already hold numbers)."""
    out = []
    for name, dc in mc.diagnostics.items():
        where = f"model.diagnostics.{name}"
        given = [k for k in ("integral", "mean", "auc_of") if getattr(dc, k) is not None]
        if len(given) != 1:
            raise ConfigError(f"{where}: give exactly one of integral, mean, auc_of")
        kind = given[0]
        if kind == "auc_of":
            if dc.auc_of not in mc.diagnostics or list(mc.diagnostics).index(dc.auc_of) > list(mc.diagnostics).index(name):
                earlier = ", ".join(list(mc.diagnostics)[: list(mc.diagnostics).index(name)]) or "(none)"
                raise ConfigError(f"{where}.auc_of: {dc.auc_of!r} is not a diagnostic defined before it; earlier: {earlier}")
            out.append(Diagnostic(name, "auc", of=dc.auc_of, units=label(dc.units)))
            continue
        expr = parse_expression(getattr(dc, kind), names, f"{where}.{kind}").xreplace(substitutions)
        cond = None if dc.where is None else parse_condition(dc.where, names, f"{where}.where").xreplace(substitutions)
        out.append(Diagnostic(name, kind, expr=expr, where=cond, units=label(dc.units)))
    return tuple(out)


def treatment_specs(config: RunConfig, params: dict[str, float] | None = None) -> list[DoseSpec]:
    """The config's treatment entries as amounts in each agent's unit: a `per_m2` dose
    multiplied by the model parameter body_surface_area (`params`: the model's
    parameters, default the config's own).

    Raises:
        ConfigError: per_m2 without a body_surface_area parameter.
    """
    params = {k: float(v) for k, v in config.model.parameters.items()} if params is None else params
    specs = []
    for i, d in enumerate(config.treatment):
        entry = d.model_dump()
        if entry.pop("per_m2"):
            if "body_surface_area" not in params:
                raise ConfigError(f"treatment[{i}].per_m2 needs the model parameter body_surface_area (m^2); "
                                  "add it to model.parameters, or give the dose in the agent's own unit")
            for key in ("dose", "dose_rate"):
                if entry[key] is not None:
                    entry[key] *= params["body_surface_area"]
        specs.append(DoseSpec(**entry))
    return specs


def _schedule(config: RunConfig, agent_names: list[str], params: dict[str, float]) -> Schedule | None:
    if not config.treatment:
        return None
    for i, d in enumerate(config.treatment):
        if d.agent not in agent_names:
            raise ConfigError(
                f"treatment[{i}].agent: {d.agent!r} is not an agent of the model; agents: {', '.join(agent_names) or '(none)'}"
            )
    return expand_schedule(treatment_specs(config, params), config.time.end)


def _check_periodic_consistency(species: list[Species]) -> None:
    """Chemotaxis reads the signal's neighbours with the moving species' topology."""
    for s in species:
        if s.chemotaxis is None:
            continue
        signal = species[s.chemotaxis.signal]
        for axis in range(3):
            if s.boundary.is_periodic(axis) != signal.boundary.is_periodic(axis):
                raise ConfigError(
                    f"model.species.{s.name}: chemotaxis toward {signal.name} needs both to be periodic "
                    f"along {AXES[axis]}, or neither"
                )
