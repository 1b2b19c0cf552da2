"""The IMEX integrator (implicit LOD diffusion of fast species) on the CPU backend."""

from __future__ import annotations

import numpy as np
import pytest
from _support import make_config

from solver.bench.accuracy import BURDEN_TOLERANCE, FIELD_TOLERANCE
from solver.config import load_config, parse_config
from solver.diagnostics import DiagnosticsEvaluator
from solver.integrators.choice import choose_implicit_species
from solver.package_data import data_dir
from solver.run import Simulation


def gaussian_config(n: int, h: float, end: float, dt, integrator: str, **time):
    c = n * h / 2
    return make_config(
        {"u": {"diffusion": 1.0, "initial": f"exp(-((x-{c})**2 + (y-{c})**2 + (z-{c})**2)/4)"}},
        shape=(n, n, n), spacing=h, end=end, dt=dt, integrator=integrator, **time,
    )


def test_fast_diffuser_is_chosen_only_when_it_pays() -> None:
    # (diffusion rate, everything else): the drug at 1000/day against cells at 10/day
    # (diffusion rate, everything else): a drug at 1000/day; cells whose own diffusion (10)
    # is slower than their chemotaxis (20) gain nothing from implicit diffusion
    assert choose_implicit_species([(1000.0, 1.0), (10.0, 20.0)]) == frozenset({0})
    # two fast drugs: both implicit leaves dt set by the cells
    assert choose_implicit_species([(1000.0, 0.0), (800.0, 0.0), (5.0, 8.0)]) == frozenset({0, 1})
    # nothing diffuses much faster than the rest: stay explicit
    assert choose_implicit_species([(10.0, 4.0), (8.0, 1.0)]) == frozenset()


def test_unconditionally_stable_at_100x_the_explicit_bound() -> None:
    n, h = 16, 1.0
    bound = h * h / 6.0  # explicit bound for D = 1 in 3D
    sim = Simulation(gaussian_config(n, h, end=100 * bound * 5, dt=100 * bound, integrator="imex", order=1))
    assert sim.plan.integrator.implicit_diffusion == frozenset({0})
    u0 = sim.u0[0]
    u = sim.evolve()[0]
    assert np.all(np.isfinite(u)) and u.min() >= 0.0
    assert u.max() <= u0.max()  # maximum principle of backward Euler
    assert u.sum() == pytest.approx(u0.sum(), rel=1e-12)  # no-flux faces conserve the total


END = 4.0  # day: the doxorubicin infusion (day 0-1) and the nine IL-2 boluses (days 1-3.67)


@pytest.fixture(scope="module")
def coarse_quickstart_runs() -> dict:
    """The shipped quickstart on a coarser 8^3 grid, to day 4: a converged reference
    (explicit, order 1, equal steps at the stability bound; explicit order 2 at the same
    steps is within 6e-5 of it, 1/300 of the smallest error compared here, at three times
    the cost), imex of order 2 with its default error control, imex with implicit cell
    transport, and imex of order 1 at three fixed steps."""
    data = load_config(data_dir("configs") / "quickstart.yaml").model_dump(mode="json")
    data["grid"].update(shape=[8, 8, 8], spacing=300.0)
    data["backend"] = "cpu"
    base_time = {**data["time"], "end": END}
    runs = {}
    for name, time in (("reference", {"integrator": "explicit", "order": 1, "rtol": None}),
                       ("imex2", {"integrator": "imex", "order": 2}),
                       # cell transport implicit too: dt is chosen for accuracy, not stability
                       ("imex2-chemotaxis", {"integrator": "imex", "order": 2, "implicit_chemotaxis": True,
                                             "dt": 0.025}),
                       *((f"imex1-{dt:g}", {"integrator": "imex", "order": 1, "dt": dt})
                         for dt in IMEX1_STEPS)):
        data["time"] = {**base_time, **time}
        sim = Simulation(parse_config(data))
        state = sim.start()
        sim.advance(state, END)
        ev = DiagnosticsEvaluator(sim.model, sim.grid, state.backend, sim.dtype)
        burden = ev.evaluate(state.fields.u, state.fields.maps, END, state.scalars(END))["tumour_burden"]
        runs[name] = {
            "burden": burden, "steps": state.fields.step, "u": state.fields.u.astype(np.float64),
            "implicit": [sim.model.names[i] for i in sorted(sim.plan.integrator.implicit_diffusion)], "names": sim.model.names}
    return runs


IMEX1_STEPS = (0.025, 0.0125, 0.00625)


def observed_orders(errors: list[float]) -> np.ndarray:
    """log2 of the ratio of successive errors at halved steps."""
    return np.log2(np.array(errors[:-1]) / np.array(errors[1:]))


def test_quickstart_defaults_are_within_the_stated_tolerance_of_a_converged_reference(
        coarse_quickstart_runs: dict) -> None:
    # measured: burden 1.23 %; fields T 1.2 %, N 4.4 %, L 2.3 %, K 1.7 %, M 0.45 %, I 0.08 %
    runs = coarse_quickstart_runs
    reference, result = runs["reference"], runs["imex2"]
    # the cells' motility and chemotaxis, the chemokine and the drugs taken implicitly
    assert result["implicit"] == ["N", "L", "K", "M", "I", "A"]
    assert result["steps"] < 0.05 * reference["steps"]  # measured 440 against 21 178
    assert result["burden"] == pytest.approx(reference["burden"], rel=BURDEN_TOLERANCE)
    errors = field_errors(runs, "imex2", against="reference")
    for name in ("T", "N", "L", "K", "M", "I"):
        assert errors[name] <= FIELD_TOLERANCE, (name, errors)


def test_imex_order_1_is_first_order_on_the_quickstart(coarse_quickstart_runs: dict) -> None:
    # Order 1 has no error control: at its stability bound (about a day here) it is far off
    # (burden +76 % at day 7), and it converges at first order as dt falls. Measured errors
    # at dt 0.025 / 0.0125 / 0.00625: burden 8.2 / 4.1 / 2.0 %, T 9.1 / 4.2 / 1.9 %,
    # M 2.2 / 1.1 / 0.53 %: observed orders 1.02-1.16 (0.78-0.94 at dt 0.1 to 0.025, before
    # the asymptotic range).
    runs = coarse_quickstart_runs
    errors = [field_errors(runs, f"imex1-{dt:g}") for dt in IMEX1_STEPS]
    burden = [abs(runs[f"imex1-{dt:g}"]["burden"] / runs["reference"]["burden"] - 1) for dt in IMEX1_STEPS]
    for name, series in (("T", [e["T"] for e in errors]), ("M", [e["M"] for e in errors]), ("burden", burden)):
        orders = observed_orders(series)
        assert np.all(np.abs(orders - 1.0) < 0.2), (name, series, orders)


def test_dry_run_reports_each_integrator(tmp_path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "solver", "run", "--dry-run", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split(":")[0].strip(): line for line in proc.stdout.splitlines() if "integrator" in line}
    # integrator auto: imex for the quickstart, because the drug's uptake and exchange bound
    # explicit steps
    assert "integrator imex, order 2 (auto: the reaction of M" in proc.stdout
    imex = lines["integrator imex (this run)"]
    assert "implicit diffusion of N, L, K, M, I, A" in imex
    steps = {name: int(line.split(" steps")[0].rsplit(" ", 1)[1]) for name, line in lines.items()
             if name.startswith("integrator ") and " steps" in line}
    assert steps["integrator imex (this run)"] * 10 < steps["integrator explicit"]
    assert not (tmp_path / "o").exists()


def field_errors(runs: dict, name: str, against: str = "reference") -> dict[str, float]:
    """Largest difference from the reference run, relative to each species' largest value."""
    explicit = runs[against]
    return {n: float(np.max(np.abs(runs[name]["u"][i] - explicit["u"][i])) / np.max(np.abs(explicit["u"][i])))
            for i, n in enumerate(explicit["names"]) if n in ("T", "N", "L", "K", "M", "I")}


def core_cells(runs: dict, name: str, species: str) -> float:
    """Cells of `species` inside the avascular core (r < 450 um of the centre) at day 4."""
    n, h = 8, 300.0
    c = (np.arange(n) + 0.5) * h - n * h / 2
    core = np.sqrt(c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2) < 450.0
    u = runs[name]["u"][runs[name]["names"].index(species)]
    return float(u[core].sum() * h**3 * 1e-12)  # cells/mL x um^3 -> cells


def test_quickstart_with_implicit_chemotaxis(coarse_quickstart_runs: dict) -> None:
    runs = coarse_quickstart_runs
    assert runs["imex2-chemotaxis"]["implicit"] == ["N", "L", "K", "M", "I", "A"]
    # tumour burden at day 4 within 3.5 % of the converged reference (measured +3.1 %)
    assert runs["imex2-chemotaxis"]["burden"] == pytest.approx(runs["reference"]["burden"], rel=0.035)
    # Fields at the default time.max_courant = 0.05 (dt 0.025 day is the ceiling): measured
    # T 3.6 %, N 2.4 %, L 4.5 %, K 2.3 %, M 1.3 % of each species' maximum. Backward-Euler
    # upwind transport, positive at any Courant number but first order, smears the cells'
    # migration (on the model before the chemokine: T 2.9 % at max_courant 0.05, 5.5 % at
    # 0.1, 13 % at 1).
    errors = field_errors(runs, "imex2-chemotaxis")
    for name, tolerance in (("T", 0.04), ("N", 0.03), ("L", 0.05), ("K", 0.03), ("M", 0.015)):
        assert errors[name] <= tolerance, (name, errors)
    # No infiltration of the avascular core that the reference does not have: CD8 and NK
    # cells there within 5 % of the reference's (measured: CD8 3086 against 3139) or, for
    # the ~0.02 NK cells there, within 5 cells.
    for species in ("L", "N"):
        ours, ref = core_cells(runs, "imex2-chemotaxis", species), core_cells(runs, "reference", species)
        assert ours - ref <= 0.05 * ref + 5.0, (species, ours, ref)
