#!/usr/bin/env python3
"""Time a run spends outside stepping (writing run.h5 above all), per output.compression.

    python3 benchmarks/io_overhead.py                      # 64^3 de Pillis, compiled CPU backend
    python3 benchmarks/io_overhead.py --backend gpu --n 128 --steps 300
    python3 benchmarks/io_overhead.py --compression gzip none
    python3 benchmarks/io_overhead.py --write-speed 64 128   # MB/s and size of one snapshot

Each row is one Simulation.run() of the de Pillis benchmark case (7 species, float32)
on n^3 cells with a snapshot and a time-series record every `--snapshot-every` steps,
through solver.bench.measure.measure_end_to_end. Its stepping time is the time the run
spends in Simulation._step_to (the steps between two records, timed in the run itself:
on a machine shared with other work the median-step estimate of measure_end_to_end
moves by more than the I/O it should show); the rest of the run's wall time (snapshots,
records, the blow-up guard, closing the file) is the time outside stepping. The target
is at most 5% of the wall time outside stepping. Timings are what this machine gave;
nothing is asserted.

`--write-speed N...`: instead, one snapshot of the de Pillis benchmark case on N^3 cells
(its initial state after 10 steps: nearly uniform fields, so the ratios are far better
than a run with a tumour and vessels gets) written by RunWriter per compression, three times each:
raw megabytes per second (the best of three, write and flush) and the size on disk
over the raw size.

`--backend`: any name the backend registry accepts (cpu: compiled, numpy: the reference, gpu).
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

TARGET_OUTSIDE = 0.05


def machine() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        name = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        return f"{name.group(1).strip() if name else platform.processor()}, {text.count('processor')} cores"
    except OSError:
        return platform.processor() or platform.machine()


def time_stepping() -> list[float]:
    """Seconds each later Simulation.run() spends stepping, one entry per run (the run's
    _step_to wrapped with a clock; its last call's total is the entry)."""
    from solver.run import simulation

    totals: list[float] = []
    step_to = simulation.Simulation._step_to
    run = simulation.Simulation._run

    def timed_step_to(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return step_to(self, *args, **kwargs)
        finally:
            totals[-1] += time.perf_counter() - start

    def timed_run(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        totals.append(0.0)
        return run(self, *args, **kwargs)

    simulation.Simulation._step_to = timed_step_to
    simulation.Simulation._run = timed_run
    return totals


def write_speed(n: int, compressions: list[str], backend: str, folder: Path) -> None:
    import numpy as np

    from solver.backends.registry import get_backend
    from solver.bench.cases import DEPILLIS, case_config
    from solver.io.run_writer import RunWriter
    from solver.run import Simulation

    sim = Simulation(case_config(DEPILLIS, n, "float32", backend))
    state = sim.start(get_backend(backend))
    sim.advance(state, 10 * sim.plan.dt)
    fields = np.ascontiguousarray(state.backend.to_host(state.fields.u))
    raw = fields.nbytes
    print(f"{n}^3, {fields.shape[0]} species float32: {raw / 1e6:.1f} MB a snapshot")
    for compression in compressions:
        best, size = float("inf"), 0
        for i in range(3):
            path = folder / f"speed-{n}-{compression}-{i}.h5"
            with RunWriter(path, sim.grid, sim.model.names, fields.dtype, {}, compression) as writer:
                writer.flush()
                empty = path.stat().st_size
                start = time.perf_counter()
                writer.write_snapshot(0.0, fields)
                writer.flush()
                best = min(best, time.perf_counter() - start)
            size = path.stat().st_size - empty
            path.unlink()
        print(f"  {compression:<6}{raw / best / 1e6:>8.0f} MB/s{size / raw:>8.3f} of the raw size")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="cpu", help="a backend name (default: cpu, the compiled one)")
    parser.add_argument("--n", type=int, default=64, help="cells along each axis (default 64)")
    parser.add_argument("--steps", type=int, default=200, help="steps of the run (default 200)")
    parser.add_argument("--snapshot-every", type=int, default=50, help="steps between snapshots (default 50)")
    parser.add_argument("--compression", nargs="+", default=["gzip", "lzf", "none"],
                        choices=["gzip", "lzf", "none"])
    parser.add_argument("--write-speed", type=int, nargs="+", metavar="N", help="time one snapshot on N^3 cells")
    parser.add_argument("--out", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    args = parser.parse_args(argv)

    from solver.bench.cases import DEPILLIS
    from solver.bench.measure import measure_end_to_end
    from solver.bench.report import BenchmarkReport
    from solver.errors import TumorsimError

    backend = args.backend
    if args.write_speed:
        print(f"machine: {machine()}; backend {args.backend}")
        with tempfile.TemporaryDirectory(prefix="tumorsim-io-", dir=args.out) as tmp:
            for n in args.write_speed:
                write_speed(n, args.compression, backend, Path(tmp))
        return 0
    report = BenchmarkReport("io overhead")
    stepping = time_stepping()
    in_steps: list[float] = []
    with tempfile.TemporaryDirectory(prefix="tumorsim-io-", dir=args.out) as tmp:
        for compression in args.compression:
            try:
                measure_end_to_end(report, DEPILLIS, args.n, args.steps, args.snapshot_every, backend, compression,
                                   Path(tmp))
            except TumorsimError as exc:
                print(f"io_overhead: error: {exc}", file=sys.stderr)
                return 2
            in_steps.append(stepping.pop())
    print(f"machine: {machine()}; backend {args.backend}; de Pillis {args.n}^3, {args.steps} steps, "
          f"a snapshot every {args.snapshot_every}")
    print(f"{'compression':<12}{'wall s':>9}{'stepping s':>12}{'outside s':>11}{'outside':>9}  target <= 5%")
    for row, steps_s in zip(report.end_to_end, in_steps):
        outside = row.wall_s - steps_s
        share = outside / row.wall_s
        verdict = "met" if share <= TARGET_OUTSIDE else "missed"
        print(f"{row.compression:<12}{row.wall_s:>9.2f}{steps_s:>12.2f}{outside:>11.2f}{100 * share:>8.1f}%  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
