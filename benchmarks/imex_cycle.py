#!/usr/bin/env python3
"""IMEX time-to-solution: a 21-day chemoimmunotherapy cycle, against a quarter-dt reference.

    python3 benchmarks/imex_cycle.py                          # 256^3 of 10 um on the GPU (the target)
    python3 benchmarks/imex_cycle.py --n 24 --backend cpu     # a CPU smoke run, seconds
    python3 benchmarks/imex_cycle.py --order 2 --no-reference
    python3 benchmarks/imex_cycle.py --steps-only             # step costs and projections only
    python3 benchmarks/imex_cycle.py --order 2 --implicit-chemotaxis --dt 0.025

configs/chemoimmuno_256.yaml (de Pillis 2006 patient 9: chemo, IL-2, TIL) on n^3 cells
of --spacing um, run end to end (Simulation.run, files written) with time.integrator
imex. Reported: wall time and steps of that run; the same run with equal steps of a
quarter of its largest dt and no step-size control (the reference), and the relative
difference of the final tumour burden; the explicit integrator's projected wall time
(its step timed on the same device times its step count); and the cost of one IMEX
step over one explicit step (each timed over --steps steps on the run's initial state).
With --implicit-chemotaxis the cells' transport is implicit too and dt (--dt) is chosen
for accuracy: at 10 um the cells' chemotaxis bounds imex's dt at ~1.4e-4 day otherwise.
Results of every variant run into --out collect in one imex_cycle.json.
Targets (one H100/H200; benchmarks/README.md says why): run <= 60 s, burden within 1 % of the reference, IMEX
step <= 8x an explicit step. Prints a table last; writes imex_cycle.json to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solver.backends.registry import get_backend  # noqa: E402
from solver.config import builtin_config_path, load_config  # noqa: E402
from solver.run import Simulation  # noqa: E402


def configured(args: argparse.Namespace, **time_update):
    cfg = load_config(builtin_config_path("chemoimmuno_256"))
    grid = cfg.grid.model_copy(update={"shape": (args.n,) * 3, "spacing": args.spacing})
    time_cfg = cfg.time.model_copy(update={
        "end": args.end, "integrator": "imex", "order": args.order, "implicit_chemotaxis": args.implicit_chemotaxis,
        "dt": args.dt if args.dt is not None else "auto", **time_update})
    output = cfg.output.model_copy(update={"pictures": False, "checkpoint": None})
    return cfg.replace(backend=args.backend, grid=grid, time=time_cfg, output=output, name=f"imex-cycle-{args.n}")


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
        values = state.systemic.values(0.0)
        run = lambda: stepper.step(f.u, f.u_new, f.maps, 0.0, dt, values)  # noqa: E731
    else:
        run = lambda: state.integrator._step(state.fields, 0.0, dt, None if not sim.model.systemic_names  # noqa: E731
                                             else state.systemic)
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
    parser.add_argument("--backend", default="gpu", choices=("gpu", "cpu", "auto"))
    parser.add_argument("--order", type=int, default=1, choices=(1, 2))
    parser.add_argument("--implicit-chemotaxis", action="store_true",
                        help="cell transport implicit too (time.implicit_chemotaxis; needs --dt)")
    parser.add_argument("--dt", type=float, default=None, help="fixed step in days (default: auto)")
    parser.add_argument("--steps", type=int, default=20, help="steps timed per integrator (default 20)")
    parser.add_argument("--no-reference", action="store_true", help="skip the quarter-dt reference run")
    parser.add_argument("--steps-only", action="store_true",
                        help="only the step costs and projected times (no runs)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    cfg = configured(args)
    sim = Simulation(cfg)
    backend = get_backend(cfg.backend)
    at_target = args.n == 256 and args.spacing == 10.0 and args.end == 21.0 and backend.name == "cupy"

    def verdict(ok: bool) -> str:  # the targets are set for 256^3 of 10 um, 21 days, on one H100
        return ("PASS" if ok else "FAIL") if at_target else "(target is for 256^3 x 10 um, 21 days, GPU)"

    variant = f"order{args.order}" + ("-implicit-chemotaxis" if args.implicit_chemotaxis else "") + \
        (f"-dt{args.dt:g}" if args.dt is not None else "") + f"-{args.n}"
    path = args.out / "imex_cycle.json"
    saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def save() -> None:  # after each stage, so a run stopped by a time limit keeps what it measured
        saved[variant] = result  # one file for every variant run into this folder
        path.write_text(json.dumps(saved, indent=2), encoding="utf-8")

    result: dict[str, object] = {"n": args.n, "spacing_um": args.spacing, "end_days": args.end,
                                 "order": args.order, "device": backend.device,
                                 "implicit": [sim.model.names[i] for i in sorted(sim.plan.integrator.implicit_diffusion)],
                                 "implicit_chemotaxis": [sim.model.names[i] for i in sorted(sim.plan.integrator.implicit_chemotaxis)],
                                 "dt_max": sim.plan.dt, "limited_by": sim.plan.limited_by,
                                 "max_change": sim.plan.max_change, "planned_steps": sim.plan.estimated_steps}
    print(f"IMEX cycle ({variant}): {args.n}^3 x {args.spacing:g} um, {args.end:g} days, order {args.order}"
          f"{', implicit chemotaxis' if args.implicit_chemotaxis else ''}, on {backend.device}")
    print(f"  implicit transport of {', '.join(result['implicit'])}; dt up to {sim.plan.dt:.4g} day, set by "
          f"{sim.plan.limited_by}; step-size control {'off' if sim.plan.max_change is None else sim.plan.max_change}",
          flush=True)

    # Step costs first: quick, and they project both runs before the long one starts.
    explicit = Simulation(configured(args, integrator="explicit", max_change=None, implicit_chemotaxis=False,
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
          f"({1e3 * explicit_step:.3g} ms per step)")
    print(f"  imex projected     {result['imex_projected_s']:10.1f} s  {sim.plan.estimated_steps:9d} steps "
          f"(steps alone, no records or files)")
    print(f"  one imex step = {ratio:.2f} explicit steps ({1e3 * imex_step:.3g} ms; <= 8): {verdict(ratio <= 8)}",
          flush=True)

    if args.steps_only:
        return 0
    with tempfile.TemporaryDirectory() as scratch:  # not under --out: $OUT comes back whole
        wall, summary = timed_run(cfg, Path(scratch) / "imex")
        result.update(wall_s=wall, steps=summary.steps, burden=summary.final_diagnostics["tumour_burden"])
        save()
        print(f"  imex run           {wall:10.1f} s  {summary.steps:9d} steps  burden {result['burden']:.6g}"
              f"   <= 60 s: {verdict(wall <= 60)}", flush=True)
        if not args.no_reference:
            ref_cfg = configured(args, dt=sim.plan.dt / 4, max_change=None)
            ref_wall, ref = timed_run(ref_cfg, Path(scratch) / "reference")
            burden = ref.final_diagnostics["tumour_burden"]
            result.update(reference_wall_s=ref_wall, reference_steps=ref.steps, reference_burden=burden,
                          burden_rel_diff=abs(result["burden"] / burden - 1.0))
            save()
            print(f"  reference (dt/4)   {ref_wall:10.1f} s  {ref.steps:9d} steps  burden {burden:.6g}   "
                  f"difference {100 * result['burden_rel_diff']:.3f} % (<= 1 %): "
                  f"{verdict(result['burden_rel_diff'] <= 0.01)}")
    return 0


if __name__ == "__main__":
    from solver.errors import TumorsimError

    try:
        sys.exit(main())
    except TumorsimError as exc:  # a bad option (e.g. --end before the last dose): one line
        print(f"imex_cycle: {exc}", file=sys.stderr)
        sys.exit(2)
