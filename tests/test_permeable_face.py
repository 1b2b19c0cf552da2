"""The permeable (Robin, vessel-wall) face: config, ghost rule, and the vessel-wall steady state.

A permeable face exchanges with an outside reservoir at concentration g through a wall
of permeability P: inward flux J = P (g - u_face). On the cell-centred grid it is the
ghost rule u_ghost = alpha u_edge + beta of solver/grid.py (FaceBC.ghost_coefficients).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
from _support import make_config

from solver.config import normalise_boundary, parse_config
from solver.errors import ConfigError
from solver.grid import FaceBC
from solver.integrators.stability import species_rates
from solver.run import Simulation

WALL = {"permeable": {"permeability": 2.5, "value": 0.8}}
WALL_NORMALISED = {"kind": "permeable", "value": 0.8, "permeability": 2.5}
NO_FLUX = {"kind": "no-flux"}

TINY: dict[str, Any] = {
    "grid": {"shape": [4, 4, 4]},
    "time": {"end": 1.0},
    "model": {"species": {"u": {"diffusion": 1.0}}},
}


def with_boundary(boundary: Any, **species: Any) -> dict[str, Any]:
    data = copy.deepcopy(TINY)
    data["model"]["species"]["u"].update(boundary=boundary, **species)
    return data


def error_of(data: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="<test>")
    message = str(info.value)
    assert "\n" not in message and message.startswith("<test>: ")
    return message


# --------------------------------------------------------------------------------- config


def test_permeable_face_parses_and_reads_back() -> None:
    config = parse_config(with_boundary({"x": {"low": WALL, "high": "no-flux"}, "z": WALL}))
    spec = config.model.species["u"].boundary
    assert spec["x"] == {"low": WALL_NORMALISED, "high": NO_FLUX}
    assert spec["y"] == {"low": NO_FLUX, "high": NO_FLUX}
    assert spec["z"] == {"low": WALL_NORMALISED, "high": WALL_NORMALISED}
    assert normalise_boundary(spec) == spec  # the normalised form reads back as is
    again = parse_config(config.model_dump(mode="json"))  # the saved resolved config
    assert again.model.species["u"].boundary == spec
    # integers are taken as numbers; P = 0 is allowed (it is exactly no-flux, tested below)
    zero = parse_config(with_boundary({"permeable": {"permeability": 0, "value": 1}}))
    assert zero.model.species["u"].boundary["x"]["low"] == {"kind": "permeable", "value": 1.0, "permeability": 0.0}


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ({"permeable": {"permeability": -1.0, "value": 1.0}},
         ["model.species.u.boundary: a permeability must be a finite number >= 0, got -1.0"]),
        ({"x": {"low": {"permeable": {"permeability": float("inf"), "value": 1.0}}}},
         ["model.species.u.boundary.x.low: a permeability must be a finite number >= 0, got inf"]),
        ({"permeable": {"permeability": "P", "value": 1.0}}, ["a permeability must be a finite number >= 0, got 'P'"]),
        ({"permeable": {"permeability": True, "value": 1.0}}, ["a permeability must be a finite number >= 0, got True"]),
        ({"permeable": {"permeability": 1.0, "value": float("nan")}},
         ["a permeable face's outside value must be a finite number, got nan"]),
        ({"permeable": {"permeability": 1.0}},
         ["a permeable face is written {permeable: {permeability: NUMBER >= 0, value: NUMBER}}"]),
        ({"permeable": {"permeability": 1.0, "value": 0.0, "area": 2}}, ["a permeable face is written"]),
        ({"permeable": 1.0}, ["a permeable face is written"]),
        ({"permeable": {"permeability": 1.0, "value": 0.0}, "value": 1.0}, ["a permeable face is written"]),
        ({"kind": "permeable", "value": 1.0}, ["unknown boundary"]),  # read-back form lacking P
        ("robin", ["unknown boundary 'robin'", "{permeable: {permeability: NUMBER >= 0, value: NUMBER}}"]),
    ],
)
def test_bad_permeable_face_names_what_is_wrong(spec: Any, fragments: list[str]) -> None:
    message = error_of(with_boundary(spec))
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("species", [{"diffusion": 0.0}, {}])  # written 0, or left at its default 0
def test_permeable_face_on_a_species_that_does_not_diffuse_is_refused(species: dict) -> None:
    data = with_boundary({"y": {"high": WALL}})
    del data["model"]["species"]["u"]["diffusion"]
    data["model"]["species"]["u"].update(species)
    message = error_of(data)
    assert "model.species.u.boundary.y.high: a permeable face needs diffusion > 0" in message


# --------------------------------------------------------------------------------- ghost rule


def test_ghost_coefficients_of_no_flux_and_value_faces() -> None:
    assert FaceBC("no-flux").ghost_coefficients(2.0, 0.5) == (1.0, 0.0)
    assert FaceBC("value", 0.7).ghost_coefficients(2.0, 0.5) == (-1.0, 1.4)
    with pytest.raises(ValueError, match="periodic"):
        FaceBC("periodic").ghost_coefficients(2.0, 0.5)


@pytest.mark.parametrize("D, h, P, g", [(1.0, 0.1, 2.0, 1.0), (2.5e-7, 1e-3, 2.7e-4, 3.0), (0.3, 2.0, 5.0, -0.4)])
def test_ghost_rule_satisfies_the_wall_flux(D: float, h: float, P: float, g: float) -> None:
    # The inward diffusive flux through the low face, D (u_ghost - u_edge) / h, equals the
    # wall's P (g - u_face) with u_face = (u_edge + u_ghost) / 2, for any edge value.
    # The high face is the mirror image (same ghost rule, flux counted the other way).
    alpha, beta = FaceBC("permeable", g, permeability=P).ghost_coefficients(D, h)
    assert -1.0 < alpha <= 1.0
    for u_edge in (0.0, 0.37 * g, 2.0, -1.5):
        ghost = alpha * u_edge + beta
        flux = D * (ghost - u_edge) / h
        wall = P * (g - 0.5 * (u_edge + ghost))
        # a few operations in float64: a few ulps of the terms' size
        assert flux == pytest.approx(wall, rel=1e-12, abs=1e-12 * (abs(P * g) + abs(P * u_edge))), u_edge


def test_ghost_rule_tends_to_no_flux_and_to_fixed_value() -> None:
    D, h, g = 1.3, 0.25, 0.9
    assert FaceBC("permeable", g, permeability=0.0).ghost_coefficients(D, h) == (1.0, 0.0)  # P = 0: exactly no-flux
    # alpha = 1 - b + O(b^2), beta = b g + O(b^2) with b = P h / D
    for P in (1e-4, 1e-6, 1e-8):
        alpha, beta = FaceBC("permeable", g, permeability=P).ghost_coefficients(D, h)
        b = P * h / D
        assert abs(alpha - 1.0) <= 1.01 * b and abs(beta) <= 1.01 * b * g
    # P -> inf: alpha = -1 + 4/b + O(1/b^2), beta = 2 g - 4 g/b + ...: the fixed value g
    for P in (1e4, 1e6, 1e8):
        alpha, beta = FaceBC("permeable", g, permeability=P).ghost_coefficients(D, h)
        b = P * h / D
        assert abs(alpha + 1.0) <= 4.01 / b and abs(beta - 2.0 * g) <= 4.01 * g / b
    # D = 0: no diffusive flux to carry the exchange, so nothing passes (documented choice)
    assert FaceBC("permeable", g, permeability=1.0).ghost_coefficients(0.0, h) == (1.0, 0.0)


def test_explicit_bound_counts_a_strongly_permeable_face() -> None:
    # 1D, D = 1, h = 1: interior rate 2 D/h^2. A fixed value adds 1 (alpha = -1, as before);
    # a permeable face with b = P h / D = 8 has alpha = (1 - 4)/(1 + 4) = -0.6 and adds 0.6;
    # a weak one (b = 0.5, alpha = 0.6 > 0) adds nothing.
    def rate(low: Any) -> float:
        cfg = make_config({"u": {"diffusion": 1.0, "boundary": {"x": {"low": low, "high": "no-flux"}}}},
                          shape=(8, 1, 1), spacing=1.0)
        sim = Simulation(cfg)
        return species_rates(sim.model, sim.grid, sim.u0, sim.static.maps)[0][2]

    assert rate("no-flux") == 2.0
    assert rate({"value": 1.0}) == 3.0
    assert rate({"permeable": {"permeability": 8.0, "value": 1.0}}) == pytest.approx(2.6, rel=1e-15)
    assert rate({"permeable": {"permeability": 0.5, "value": 1.0}}) == 2.0


# --------------------------------------------------------------------------------- the step


def test_edge_cell_update_is_the_wall_and_half_cell_in_series(tmp_path) -> None:
    # Independent of the ghost rule: the edge cell gains J = (g - u_0) / (1/P + (h/2)/D),
    # the wall and the half cell between the face and the cell centre as two resistances
    # in series, plus the ordinary flux D (u_1 - u_0)/h from its neighbour.
    D, P, g, h, n = 0.7, 3.0, 1.5, 0.4, 6
    u0 = np.random.default_rng(2).uniform(0.1, 1.0, (n, 1, 1))
    np.save(tmp_path / "u.npy", u0)
    cfg = make_config(
        {"u": {"diffusion": D, "initial": {"file": str(tmp_path / "u.npy")},
               "boundary": {"x": {"low": {"permeable": {"permeability": P, "value": g}}, "high": "no-flux"}}}},
        shape=(n, 1, 1), spacing=h, end=0.01,
    )
    sim = Simulation(cfg)
    assert sim.plan.dt >= 0.01  # one step
    u1 = sim.evolve()[0][:, 0, 0]
    u = u0[:, 0, 0]
    wall = (g - u[0]) / (1.0 / P + 0.5 * h / D)
    expected = u[0] + 0.01 * (D * (u[1] - u[0]) / h + wall) / h
    assert u1[0] == pytest.approx(expected, rel=1e-13)  # float64 round-off of a few operations
    interior = u[1:-1] + 0.01 * D * (u[:-2] - 2 * u[1:-1] + u[2:]) / h**2
    np.testing.assert_allclose(u1[1:-1], interior, rtol=1e-13)


def test_zero_permeability_is_bit_identical_to_no_flux_with_chemotaxis(tmp_path) -> None:
    # P = 0 gives alpha = 1, beta = 0, and permeable faces pass no chemotactic flux: the
    # run must be the no-flux run, bit for bit, for the diffusing and the migrating species.
    shape = (6, 5, 4)
    rng = np.random.default_rng(7)
    for name in ("u", "s"):
        np.save(tmp_path / f"{name}.npy", rng.uniform(0.2, 1.0, shape))

    def run(face: Any) -> np.ndarray:
        cfg = make_config(
            {"u": {"diffusion": 0.3, "initial": {"file": str(tmp_path / "u.npy")}, "boundary": face,
                   "chemotaxis": {"signal": "s", "sensitivity": 0.8}},
             "s": {"diffusion": 0.5, "reaction": "-0.1*s", "initial": {"file": str(tmp_path / "s.npy")},
                   "boundary": face}},
            shape=shape, end=0.5,
        )
        return Simulation(cfg).evolve()

    closed = run("no-flux")
    np.testing.assert_array_equal(run({"permeable": {"permeability": 0.0, "value": 5.0}}), closed)
    # and a permeable face with P > 0 does exchange: s gains from the reservoir at 5
    leaky = run({"permeable": {"permeability": 0.5, "value": 5.0}})
    assert leaky[1].sum() > closed[1].sum() * 1.05


# ------------------------------------------------------------------ the vessel-wall steady state
#
# Issue 7: a species with diffusion D and linear decay k next to a vessel wall (low x face,
# permeability P, plasma concentration C_p), no-flux at the far end. In a semi-infinite
# domain the steady state is
#
#     c(x) = C_p P lambda / (P lambda + D) exp(-x / lambda),     lambda = sqrt(D / k)
#
# (c'' = c / lambda^2, bounded, and -D c'(0) = P (C_p - c(0))). The domain is 20 lambda
# long, so the far no-flux face changes c by ~exp(-40) relative: nothing measurable.
# Time: the operator D lap - k with these faces has every eigenvalue <= -k, so the
# distance to the steady state falls at least as exp(-k t) whatever L^2/D is; from c = 0
# at t = 0 it is below exp(-20) = 2e-9 (relative) at t = 20/k.

D_WALL, K_WALL, P_WALL, C_PLASMA = 1.0, 1.0, 2.0, 1.0
LAMBDA = math.sqrt(D_WALL / K_WALL)
AMPLITUDE = C_PLASMA * P_WALL * LAMBDA / (P_WALL * LAMBDA + D_WALL)  # 2/3


def vessel_wall(h: float, end: float, **time: Any) -> tuple[np.ndarray, np.ndarray, Simulation]:
    """(steady state along x, analytic profile at the cell centres, simulation), float64."""
    n = round(20 * LAMBDA / h)
    cfg = make_config(
        {"c": {"diffusion": "D", "reaction": "-k*c",
               "boundary": {"x": {"low": {"permeable": {"permeability": P_WALL, "value": C_PLASMA}},
                                  "high": "no-flux"}}}},
        shape=(n, 1, 1), spacing=h, end=end, parameters={"D": D_WALL, "k": K_WALL}, **time,
    )
    sim = Simulation(cfg)
    c = sim.evolve()[0][:, 0, 0]
    x = (np.arange(n) + 0.5) * h
    return c, AMPLITUDE * np.exp(-x / LAMBDA), sim


def steady_error(c: np.ndarray, exact: np.ndarray) -> float:
    return float(np.max(np.abs(c - exact))) / AMPLITUDE


def test_vessel_wall_steady_state_explicit_second_order_in_space() -> None:
    # Forward Euler's fixed point u + dt F(u) = u is F(u) = 0 whatever dt: the steady error
    # is the spatial discretisation's alone (interior stencil and ghost rule, both O(h^2)).
    # Measured (max over cells, relative to C_p P lambda / (P lambda + D), at the wall):
    # 7.72e-4, 2.01e-4, 5.11e-5 at h = 0.1, 0.05, 0.025 lambda; ratios 3.85, 3.92, fitted
    # order 1.96 (the same numbers as a direct sparse solve of the discrete steady state).
    hs = [0.1 * LAMBDA, 0.05 * LAMBDA, 0.025 * LAMBDA]
    errors = []
    for h in hs:
        c, exact, sim = vessel_wall(h, end=20.0 / K_WALL, integrator="explicit")
        assert not sim.plan.integrator.implicit_diffusion
        errors.append(steady_error(c, exact))
    slope = float(np.polyfit(np.log(hs), np.log(errors), 1)[0])
    assert abs(slope - 2.0) < 0.2, (errors, slope)
    # the constant too: error / (h/lambda)^2 is 0.077..0.082 here; a wrong ghost rule (the
    # wall flux taken as P (g - u_edge) instead of P (g - u_face)) is O(h): 0.33 h/lambda.
    assert errors[-1] < 0.1 * (hs[-1] / LAMBDA) ** 2, errors


def test_vessel_wall_steady_state_imex() -> None:
    # IMEX with explicit reactions: u* = (1 - k dt) u, then (I - dt D A) u_new = u* + dt D b
    # (A u + b: the Laplacian with the wall's ghost). Its fixed point solves D (A u + b) = k u:
    # the very equations of the explicit steady state, so the Lie splitting leaves no
    # O(k dt) error in the steady state. Checked at dt = 0.5 / k, ~100x the explicit
    # diffusion bound: the two steady states agree to round-off (measured 3e-15; the
    # solves' condition number ~ 4 D / (k h^2) = 400 times 1e-16 is the scale, 1e-12
    # leaves room for it and none for an O(dt) splitting error, ~1e-2 here).
    h, end = 0.1 * LAMBDA, 40.0 / K_WALL  # 40/k: both runs within exp(-40) of their fixed point
    explicit, exact, _ = vessel_wall(h, end, integrator="explicit")
    imex, _, sim = vessel_wall(h, end, integrator="imex", dt=0.5 / K_WALL, reactions="explicit", order=1)
    assert sim.plan.integrator.implicit_diffusion == frozenset({0})
    assert steady_error(imex, explicit) < 1e-12
    assert steady_error(imex, exact) < 1e-3  # hence the spatial error above: 7.7e-4


@pytest.mark.parametrize("order", [1, 2])
def test_vessel_wall_steady_state_imex_with_the_sink_on_the_diagonal_does_not_depend_on_dt(order: int) -> None:
    # With reactions: linearly-implicit the decay k sits on the diagonal of the line solve,
    # (1 + dt k - dt D A) u_new = u + dt D b: backward Euler of the whole linear operator, whose
    # fixed point solves D (A u + b) = k u exactly, at any dt. The scheme this replaced took
    # the decay in a step of its own, u* = u / (1 + k dt), before the diffusion solve: its
    # fixed point was the steady state of the decay rate k / (1 + k dt), off by O(k dt)
    # (measured 2.45e-2, 1.25e-2, 6.34e-3 at k dt = 0.1, 0.05, 0.025). Here: round-off.
    h, end = 0.1 * LAMBDA, 40.0 / K_WALL
    explicit, exact, _ = vessel_wall(h, end, integrator="explicit")
    for dt in (0.5 / K_WALL, 0.1 / K_WALL, 0.025 / K_WALL):
        c, _, sim = vessel_wall(h, end, integrator="imex", dt=dt, reactions="linearly-implicit", order=order,
                                rtol=None)
        assert sim.plan.integrator.implicit_diffusion == frozenset({0})
        assert steady_error(c, explicit) < 1e-12, dt
        assert steady_error(c, exact) < 1e-3  # the spatial error alone, as the explicit steady state
