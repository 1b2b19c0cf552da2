#!/usr/bin/env python3
"""The 256^3 chemoimmunotherapy cycle at the default accuracy: time, and fields vs a reference.

    python3 benchmarks/imex_cycle.py                          # 256^3 x 10 um, 21 days, GPU, run only
    python3 benchmarks/imex_cycle.py --end 1 --reference      # the first day (an infusion), checked
    python3 benchmarks/imex_cycle.py --n 16 --spacing 160 --backend cpu --reference   # CPU, a minute
    python3 benchmarks/imex_cycle.py --steps-only             # step costs and projections only
    python3 benchmarks/imex_cycle.py --implicit-chemotaxis --dt 0.025 --reference

configs/chemoimmuno_256.yaml (de Pillis 2006 patient 9: chemo, IL-2, TIL) on n^3 cells of
--spacing um with imex of order 2 and the default error control (time.rtol 0.05), the
setting the README's accuracy statement covers; --order, --rtol, --implicit-chemotaxis
and --dt change it. Reported: the explicit and this run's step costs on the initial state
and the projected wall times; the run end to end (Simulation.run, files written) or,
with --reference, stepped in lockstep with a reference (the same config in float64 at
time.rtol = --reference-rtol) and compared at every time-series record: the max-norm
field error of each species relative to its largest value, and the final tumour burden.
Targets (one H100/H200): the fields within 2 % and the burden within 0.1 % of the
reference (solver/bench/accuracy.py), and 21 days in <= 60 s; the second is out of reach
of the accurate path at 10 um (cell chemotaxis bounds imex's dt at ~1.4e-4 day, about
150 000 steps), which the projection line says in numbers. Prints a table last; writes
imex_cycle.json to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solver.backends.registry import get_backend
from solver.bench.accuracy import BURDEN_TOLERANCE, FIELD_TOLERANCE, compare_runs, within_tolerance
from solver.config import builtin_config_path, load_config
from solver.run import Simulation


def configured(args: argparse.Namespace, precision: str | None = None, **time_update):
    cfg = load_config(builtin_config_path("chemoimmuno_256"))
    grid = cfg.grid.model_copy(update={"shape": (args.n,) * 3, "spacing": args.spacing})
    time_cfg = cfg.time.model_copy(update={
        "end": args.end, "integrator": "imex", "order": args.order, "implicit_chemotaxis": args.implicit_chemotaxis,
        "dt": args.dt if args.dt is not None else "auto", "rtol": args.rtol, **time_update})
    output = cfg.output.model_copy(update={"pictures": False, "checkpoint": None})
    return cfg.replace(backend=args.backend, grid=grid, time=time_cfg, output=output, name=f"imex-cycle-{args.n}",
                       precision=precision or cfg.precision, treatment=doses_before(cfg.treatment, args.end))


def doses_before(treatment, end: float) -> list:
    """The cycle's treatment cut to the doses that start before `end` (--end shorter than
    21 days: the first day is the chemotherapy infusion, the stiffest part of the cycle)."""
    kept = []
    for dose in treatment:
        count = sum(1 for k in range(dose.count) if dose.start + k * (dose.every or 0.0) < end)
        if count:
            kept.append(dose.model_copy(update={"count": count}))
    return kept


def timed_run(cfg, out: Path) -> tuple[float, object]:
    started = time.perf_counter()
    summary = Simulation(cfg, out_dir=out, overwrite=True).run()
    return time.perf_counter() - started, summary


def step_seconds(sim: Simulation, integrator: str, steps: int) -> float:
    """Seconds per step of `integrator` (explicit or imex) on the initial state, device synchronised."""
    backend = get_backend(sim.config.backend)
    state = sim.start(backend)
    dt = sim.plan.dt
    if integrator == "explicit":
        stepper, f = state.integrator.stepper, state.fields
        values = state.scalars(0.0)
        run = lambda: stepper.step(f.u, f.u_new, f.maps, 0.0, dt, values)
    else:
        run = lambda: state.integrator.step(state.fields, 0.0, dt, state.systemic)
    run()
    backend.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        run()
    backend.synchronize()
    return (time.perf_counter() - started) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="cells per axis (default 256)")
    parser.add_argument("--spacing", type=float, default=10.0, help="cell size in um (default 10)")
    parser.add_argument("--end", type=float, default=21.0, help="days (default 21)")
    parser.add_argument("--backend", default="gpu", choices=("gpu", "cpu", "numpy", "auto"))
    parser.add_argument("--order", type=int, default=2, choices=(1, 2))
    parser.add_argument("--rtol", default="auto", type=lambda v: v if v in ("auto", "none") else float(v),
                        help="time.rtol of the run (default auto: 0.05 at order 2; none: equal steps)")
    parser.add_argument("--implicit-chemotaxis", action="store_true",
                        help="cell transport implicit too (time.implicit_chemotaxis; needs --dt)")
    parser.add_argument("--dt", type=float, default=None, help="fixed step in days (default: auto)")
    parser.add_argument("--steps", type=int, default=20, help="steps timed per integrator (default 20)")
    parser.add_argument("--reference", action="store_true",
                        help="step beside a converged float64 reference and compare the fields")
    parser.add_argument("--reference-rtol", type=float, default=2.5e-3,
                        help="time.rtol of the reference (default 2.5e-3: 20x tighter than the default)")
    parser.add_argument("--steps-only", action="store_true",
                        help="only the step costs and projected times (no runs)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = parser.parse_args(argv)
    if args.rtol == "none":
        args.rtol = None
    args.out.mkdir(parents=True, exist_ok=True)

    cfg = configured(args)
    sim = Simulation(cfg)
    backend = get_backend(cfg.backend)
    at_target = args.n == 256 and args.spacing == 10.0 and args.end == 21.0 and backend.name == "cupy"

    def verdict(ok: bool) -> str:  # the targets are set for 256^3 of 10 um, 21 days, on one H100
        return ("PASS" if ok else "FAIL") if at_target else "(target is for 256^3 x 10 um, 21 days, GPU)"

    variant = f"order{args.order}" + ("-implicit-chemotaxis" if args.implicit_chemotaxis else "") + \
        (f"-dt{args.dt:g}" if args.dt is not None else "") + f"-rtol{sim.plan.rtol}" + f"-{args.n}"
    path = args.out / "imex_cycle.json"
    saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def save() -> None:  # after each stage, so a run stopped by a time limit keeps what it measured
        saved[variant] = result  # one file for every variant run into this folder
        path.write_text(json.dumps(saved, indent=2), encoding="utf-8")

    result: dict[str, object] = {"n": args.n, "spacing_um": args.spacing, "end_days": args.end,
                                 "order": sim.plan.order, "rtol": sim.plan.rtol, "device": backend.device,
                                 "implicit": [sim.model.names[i] for i in sorted(sim.plan.integrator.implicit_diffusion)],
                                 "implicit_chemotaxis": [sim.model.names[i] for i in sorted(sim.plan.integrator.implicit_chemotaxis)],
                                 "dt_max": sim.plan.dt, "limited_by": sim.plan.limited_by,
                                 "planned_steps": sim.plan.estimated_steps}
    print(f"IMEX cycle ({variant}): {args.n}^3 x {args.spacing:g} um, {args.end:g} days, order {sim.plan.order}"
          f"{', implicit chemotaxis' if args.implicit_chemotaxis else ''}, on {backend.device}")
    print(f"  implicit diffusion of {', '.join(result['implicit'])}; {sim.plan.step_summary()} day, set by "
          f"{sim.plan.limited_by}", flush=True)

    # Step costs first: quick, and they project both runs before the long one starts.
    explicit = Simulation(configured(args, integrator="explicit", order=1, rtol=None, implicit_chemotaxis=False,
                                     dt="auto"))
    explicit_step = step_seconds(explicit, "explicit", args.steps)
    imex_step = step_seconds(sim, "imex", args.steps)
    ratio = imex_step / explicit_step
    result.update(explicit_steps=explicit.plan.estimated_steps, explicit_step_s=explicit_step,
                  explicit_projected_s=explicit_step * explicit.plan.estimated_steps,
                  imex_step_s=imex_step, imex_over_explicit_step=ratio,
                  imex_projected_s=imex_step * sim.plan.estimated_steps)
    save()
    print(f"  explicit projected {result['explicit_projected_s']:10.1f} s  {explicit.plan.estimated_steps:9d} steps "
          f"({1e3 * explicit_step:.3g} ms per step, order 1)")
    print(f"  imex projected     {result['imex_projected_s']:10.1f} s  {'>=' if sim.plan.controlled else '  '}"
          f"{sim.plan.estimated_steps:7d} steps (at dt_max; steps alone, no records or files)"
          f"   <= 60 s: {verdict(result['imex_projected_s'] <= 60)}")
    print(f"  one imex step = {ratio:.2f} explicit steps ({1e3 * imex_step:.3g} ms)", flush=True)

    if args.steps_only:
        return 0
    if not args.reference:
        with tempfile.TemporaryDirectory() as scratch:  # not under --out: $OUT comes back whole
            wall, summary = timed_run(cfg, Path(scratch) / "imex")
        result.update(wall_s=wall, steps=summary.steps, burden=summary.final_diagnostics["tumour_burden"])
        save()
        print(f"  imex run           {wall:10.1f} s  {summary.steps:9d} steps  burden {result['burden']:.6g}"
              f"   <= 60 s: {verdict(wall <= 60)}", flush=True)
        return 0
    reference = Simulation(configured(args, "float64", rtol=args.reference_rtol, dt="auto"))
    comparison = compare_runs({"run": sim}, reference, backend)
    cost, errors = comparison.costs["run"], comparison.errors["run"]
    ok = within_tolerance(errors)
    result.update(wall_s=cost.seconds, steps=cost.steps, rejected=cost.rejected, burden=cost.burden,
                  max_error_estimate=cost.max_error, reference_rtol=args.reference_rtol,
                  reference_steps=comparison.reference.steps, reference_wall_s=comparison.reference.seconds,
                  reference_burden=comparison.reference.burden, errors=errors, within_tolerance=ok)
    save()
    worst = max((n for n in comparison.names), key=lambda n: errors[n])
    print(f"  imex run           {cost.seconds:10.1f} s  {cost.steps:9d} steps  burden {cost.burden:.6g}"
          f"   <= 60 s: {verdict(cost.seconds <= 60)}")
    print(f"  reference          {comparison.reference.seconds:10.1f} s  {comparison.reference.steps:9d} steps "
          f"(float64, rtol {args.reference_rtol:g})")
    print("  field errors (max over cells and records, % of each species' largest value): "
          + ", ".join(f"{n} {100 * errors[n]:.3g}" for n in comparison.names))
    print(f"  accuracy: burden {100 * errors['burden']:.3g} % (<= {100 * BURDEN_TOLERANCE:g} %), largest field "
          f"error {worst} {100 * errors[worst]:.3g} % (<= {100 * FIELD_TOLERANCE:g} %): "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    from solver.errors import TumorsimError

    try:
        sys.exit(main())
    except TumorsimError as exc:  # a bad option (e.g. --end before the last dose): one line
        print(f"imex_cycle: {exc}", file=sys.stderr)
        sys.exit(2)
