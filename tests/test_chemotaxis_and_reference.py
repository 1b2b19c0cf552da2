"""The NumPy step against an independent float64 reference, and chemotaxis against theory.

The reference below is written separately from solver/backends/numpy_backend.py (with
np.pad for the ghost layers) from the formulas in solver/grid.py and
solver/backends/cuda_codegen.py; the GPU kernel is checked against the NumPy step
in test_gpu_parity.py, so the chain GPU -> NumPy -> reference covers every term.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _support import make_config

from solver.run import Simulation

FACES = {
    "no-flux": "no-flux",
    "value": {"value": 0.7},
    "periodic": "periodic",
}


def pad_with_ghosts(u: np.ndarray, faces: dict[str, tuple[object, object]]) -> np.ndarray:
    """Ghost layer per face: no-flux copies the edge, value g gives 2g - edge, periodic wraps."""
    p = u
    for axis, name in enumerate("xyz"):
        low, high = faces[name]
        if low == "periodic":
            p = np.pad(p, [(1, 1) if a == axis else (0, 0) for a in range(3)], mode="wrap")
            continue
        p = np.pad(p, [(1, 1) if a == axis else (0, 0) for a in range(3)], mode="edge")
        for side, face in ((0, low), (-1, high)):
            if isinstance(face, dict):
                idx = [slice(None)] * 3
                idx[axis] = side
                p[tuple(idx)] = 2 * face["value"] - p[tuple(idx)]
    return p


def reference_step(u, s, D, chi, reaction, faces_u, faces_s, h, dt):
    """u + dt (D lap u - div(chi u grad s) + reaction) in float64, by the book."""
    pu, ps = pad_with_ghosts(u, faces_u), pad_with_ghosts(s, faces_s)
    c = (slice(1, -1),) * 3
    lap = np.zeros_like(u)
    div = np.zeros_like(u)
    for a in range(3):
        up = pu[tuple(slice(2, None) if b == a else slice(1, -1) for b in range(3))]
        um = pu[tuple(slice(0, -2) if b == a else slice(1, -1) for b in range(3))]
        sp_ = ps[tuple(slice(2, None) if b == a else slice(1, -1) for b in range(3))]
        sm = ps[tuple(slice(0, -2) if b == a else slice(1, -1) for b in range(3))]
        lap += (up - 2 * u + um) / h[a] ** 2
        vp, vm = chi * (sp_ - ps[c]) / h[a], chi * (ps[c] - sm) / h[a]
        fp = np.where(vp > 0, vp * u, vp * up)
        fm = np.where(vm > 0, vm * um, vm * u)
        low, high = faces_u["xyz"[a]]
        if high == "no-flux":
            fp[tuple(-1 if b == a else slice(None) for b in range(3))] = 0
        if low == "no-flux":
            fm[tuple(0 if b == a else slice(None) for b in range(3))] = 0
        div += (fp - fm) / h[a]
    return u + dt * (D * lap - div + reaction)


@pytest.mark.parametrize("kind", ["no-flux", "value", "periodic", "mixed"])
def test_numpy_step_matches_independent_reference(kind: str, tmp_path) -> None:
    shape, h = (7, 6, 5), (1.0, 0.8, 1.3)
    rng = np.random.default_rng(3)
    u0, s0 = rng.uniform(0.2, 1.0, shape), rng.uniform(0.0, 2.0, shape)
    np.save(tmp_path / "u.npy", u0)
    np.save(tmp_path / "s.npy", s0)
    if kind == "mixed":
        bc_u = {"x": {"low": {"value": 0.3}, "high": "no-flux"}, "y": "periodic", "z": {"low": "no-flux", "high": {"value": 1.5}}}
        bc_s = {"x": {"low": "no-flux", "high": {"value": 2.0}}, "y": "periodic", "z": "no-flux"}
    else:
        bc_u = bc_s = FACES[kind]
    cfg = make_config(
        {
            "u": {"diffusion": 0.4, "reaction": "0.5*u*(1 - u) - u*s", "initial": {"file": str(tmp_path / "u.npy")},
                  "boundary": bc_u, "chemotaxis": {"signal": "s", "sensitivity": 0.3}},
            "s": {"diffusion": 0.0, "initial": {"file": str(tmp_path / "s.npy")}, "boundary": bc_s},
        },
        shape=shape, spacing=h, end=0.01,
    )
    sim = Simulation(cfg)
    u1 = sim.evolve()
    n_steps = math.ceil(0.01 / sim.plan.dt * (1 - 1e-12))
    assert n_steps == 1  # dt bound is far above 0.01: exactly one step

    def faces(spec):
        from solver.config import normalise_boundary

        norm = normalise_boundary(spec)
        return {a: tuple(f["kind"] if f["kind"] != "value" else {"value": f["value"]} for f in (norm[a]["low"], norm[a]["high"])) for a in "xyz"}

    ref = reference_step(u0, s0, 0.4, 0.3, 0.5 * u0 * (1 - u0) - u0 * s0, faces(bc_u), faces(bc_s), h, 0.01)
    np.testing.assert_allclose(u1[0], ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(u1[1], s0)  # no diffusion, no reaction: unchanged


def test_chemotaxis_conserves_mass_and_positivity_with_no_flux(tmp_path) -> None:
    shape = (10, 9, 8)
    rng = np.random.default_rng(5)
    np.save(tmp_path / "u.npy", rng.uniform(0.0, 1.0, shape))
    cfg = make_config(
        {
            "u": {"diffusion": 0.2, "initial": {"file": str(tmp_path / "u.npy")},
                  "chemotaxis": {"signal": "s", "sensitivity": 1.5}},
            "s": {"diffusion": 0.0, "initial": "exp(-((x-5)**2 + (y-4)**2 + (z-4)**2)/4)*3"},
        },
        shape=shape, end=20.0,
    )
    sim = Simulation(cfg)
    u = sim.evolve()[0]
    total0 = sim.u0[0].sum()
    assert abs(u.sum() - total0) / total0 < 1e-12
    assert u.min() >= 0.0
    # cells gathered at the signal's peak: the density there rose well above the mean
    assert u[5, 4, 4] > 3 * u.mean()


def test_chemotaxis_steady_state_against_discrete_and_continuous_theory() -> None:
    # Fixed linear signal s = a x, no-flux faces: zero net flux D (u_{i+1} - u_i)/h = v u_i
    # (upwind from i, v = chi a > 0) gives u_{i+1}/u_i = 1 + v h / D exactly, which is the
    # continuous steady state exp(v x / D) to first order in h.
    D, chi, a, h, n = 1.0, 0.5, 0.4, 0.25, 24
    v = chi * a
    cfg = make_config(
        {
            "u": {"diffusion": D, "initial": 1.0, "chemotaxis": {"signal": "s", "sensitivity": chi}},
            "s": {"diffusion": 0.0, "initial": f"{a}*x"},
        },
        shape=(n, 1, 1), spacing=h, end=60.0,  # slowest relaxation ~ exp(-D pi^2 t / L^2) ~ e^-16
    )
    u = Simulation(cfg).evolve()[0][:, 0, 0]
    ratios = u[1:] / u[:-1]
    np.testing.assert_allclose(ratios, 1 + v * h / D, rtol=1e-6)
    # first-order upwind: ln(ratio)/h differs from v/D by O(v^2 h / D^2)
    assert math.log(ratios.mean()) / h == pytest.approx(v / D, rel=v * h / D)
