"""Study throughput on the CPU LocalCluster against the single-run rate, in one process run.

    python benchmarks/study_throughput.py [--members 16] [--workers 2] [--singles 3]
                                          [--write-results] [--out DIR]

Members: the quickstart (16^3 cells, 7 days, pictures off, backend cpu) with the chemo
dose rate spread over `--members` values. The single-run rate is measured first, in
this process, by running `--singles` of those members one after another through the
same function a worker calls (solver.study.members.run_member: config, Simulation.run,
outcomes, result.json), after one warm-up member (imports and caches, as a warm worker
has them). Then the study runs on an embedded LocalCluster of `--workers`
single-threaded workers (solver.study.run_study's engine). Reported:

    throughput   members / (first submission -> last result)      the cluster warm
    end to end   members / (the whole study call: cluster start, shutdown, summary)
    ratio        throughput / (workers x single-run rate); the issue's target is >= 0.85
    plain        the same members in `--workers` plain processes at once, no Dask: what
                 the machine gives when that many members run together (the ceiling)

--write-results replaces the "Study throughput" section of benchmarks/RESULTS.md with
the numbers and the machine (from /proc/cpuinfo). Timings are what this machine gave;
nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "RESULTS.md"
SECTION = "## Study throughput"


def study(members: int, workers: int) -> dict:
    return {
        "name": "throughput",
        "base": str(REPO / "configs" / "quickstart.yaml"),
        "set": {"output.pictures": False, "backend": "cpu"},
        "vary": {"treatment[chemo].dose_rate": {"linspace": [0.5, 4.0, members]}},
        "include_base": False,
        "cluster": {"kind": "local", "workers": workers},
    }


def machine() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
        model = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        cores = len(re.findall(r"^processor\s*:", text, re.MULTILINE))
        return f"{model.group(1).strip() if model else platform.processor()}, {cores} logical cores"
    except OSError:
        return platform.processor() or platform.machine()


def single_rate(resolved, folder: Path, singles: int) -> tuple[float, list[float]]:
    """Members per second of one process running members one after another."""
    from solver.study.members import run_member, task_for

    times = []
    for k, member in enumerate(resolved.members[: singles + 1]):
        started = time.perf_counter()
        result = run_member(task_for(member, folder / member.id, resolved, False, None))
        assert result["status"] == "done", result
        if k:  # the first one warms imports and caches up
            times.append(time.perf_counter() - started)
    return 1.0 / statistics.mean(times), times


def _run_share(args: tuple[dict, str, list[int]]) -> float:
    """In a fresh process: one warm-up member, then the members `indexes`; their seconds."""
    from solver.study import resolve_study
    from solver.study.members import run_member, task_for

    data, folder, indexes = args
    resolved = resolve_study(data)
    warm = resolved.members[-1]
    run_member(task_for(warm, Path(folder) / f"warm-{indexes[0]}", resolved, False, None))
    started = time.perf_counter()
    for i in indexes:
        m = resolved.members[i]
        run_member(task_for(m, Path(folder) / m.id, resolved, False, None))
    return time.perf_counter() - started


def plain_processes(data: dict, folder: Path, members: int, workers: int) -> float:
    """Members per second of `workers` plain processes (no Dask) sharing the members, each
    warmed up first: what this machine gives when that many members run at once."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    shares = [(data, str(folder), list(range(k, members, workers))) for k in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        seconds = list(pool.map(_run_share, shares))
    return members / max(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--singles", type=int, default=3)
    parser.add_argument("--out", help="keep the study folders here (default: a temporary folder)")
    parser.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()

    from solver.study import resolve_study
    from solver.study.engine import execute

    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="study-throughput-"))
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    resolved = resolve_study(study(args.members, args.workers))
    rate, singles = single_rate(resolved, root / "singles", args.singles)
    print(f"single run: {statistics.mean(singles):.2f} s per member ({', '.join(f'{t:.2f}' for t in singles)}) "
          f"-> {rate:.3f} members/s", flush=True)
    plain = plain_processes(study(args.members, args.workers), root / "plain", args.members, args.workers)
    print(f"{args.workers} plain processes at once (no Dask): {plain:.3f} members/s", flush=True)
    import resource

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    result = execute(resolved, root / "study", progress=False)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    driver_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    assert result.counts["done"] == args.members, result.counts
    throughput = args.members / result.collect_seconds
    end_to_end = args.members / result.wall_seconds
    ratio = throughput / (args.workers * rate)
    walls = result.summary["wall_seconds"]
    numbers = {
        "machine": machine(), "python": platform.python_version(), "members": args.members,
        "workers": args.workers, "single_seconds": singles, "single_rate": rate,
        "collect_seconds": result.collect_seconds, "study_seconds": result.wall_seconds,
        "throughput": throughput, "end_to_end": end_to_end, "ratio": ratio,
        "ratio_end_to_end": end_to_end / (args.workers * rate),
        "driver_cpu_seconds": driver_cpu,
        "plain_rate": plain, "plain_ratio": plain / (args.workers * rate), "dask_vs_plain": throughput / plain,
        "member_wall_mean": float(walls.mean()), "member_wall_max": float(walls.max()),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(json.dumps(numbers, indent=1))
    (root / "throughput.json").write_text(json.dumps(numbers, indent=1), encoding="utf-8")
    if args.write_results:
        write_results(numbers)
    if not args.out:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def write_results(n: dict) -> None:
    section = f"""{SECTION}

`python benchmarks/study_throughput.py --write-results`, {n['date']}, {n['machine']}
(Python {n['python']}; the machine's 2 cores were shared with other work, so the
numbers move by some 10 % from run to run).

{n['members']} quickstart members (16^3 cells, 7 days, 700 imex steps, pictures off) on an
embedded LocalCluster of {n['workers']} single-threaded workers:

| measure | value |
|---|---|
| single run, in this process, one after another (solver.study.members.run_member) | {statistics.mean(n['single_seconds']):.2f} s per member ({n['single_rate']:.3f} members/s) |
| study, first submission to last result | {n['collect_seconds']:.1f} s: {n['throughput']:.3f} members/s |
| study, whole call (cluster start and shutdown, summary) | {n['study_seconds']:.1f} s: {n['end_to_end']:.3f} members/s |
| member wall time on a worker, mean / max | {n['member_wall_mean']:.2f} s / {n['member_wall_max']:.2f} s |
| CPU time of the study process itself (scheduler, client, summary writes) | {n['driver_cpu_seconds']:.1f} s |
| {n['workers']} plain processes at once, no Dask (each warmed up first) | {n['plain_rate']:.3f} members/s: {n['plain_ratio']:.2f} x (workers x single-run rate) |
| the study against those plain processes | {n['dask_vs_plain']:.2f} |
| **ratio: throughput / (workers x single-run rate)** (target >= 0.85) | **{n['ratio']:.2f}** ({n['ratio_end_to_end']:.2f} counting cluster start and shutdown) |
"""
    text = RESULTS.read_text(encoding="utf-8")
    if SECTION in text:
        start = text.index(SECTION)
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + (text[end + 1:] if end != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text, encoding="utf-8")
    print(f"updated {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
