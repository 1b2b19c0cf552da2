"""Grid refinement of a shipped config: the same physical domain at n, 2n and 4n cells.

    python benchmarks/grid_refinement.py [--config configs/chemoimmuno.yaml] [--n 16]
                                         [--end 1.0] [--rtol 0.005]

Each run is the config with the grid refined (spacing scaled so the domain is the same),
float64, error control tightened (--rtol) so the time error is far below the spatial one.
The vessel map is defined in physical space (docs/model.md section 10), so every grid
holds the same vessels. Reported per pair of grids: the largest difference of the
block-averaged fields (each species relative to its largest value) and the tumour burden;
the observed order is log2 of the ratio of successive differences (2 for the
second-order Laplacian when the fields are smooth; the upwind chemotaxis and the
unresolved parts - tumour edge, vessel-scale drug profiles - can lower it).
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import numpy as np

from solver.config import load_config, parse_config
from solver.run import Simulation


def run(config: Path, n: int, base_n: int, end: float, rtol: float) -> tuple[np.ndarray, float, list[str], float, int]:
    data = load_config(config).model_dump(mode="json")
    shape, spacing = data["grid"]["shape"], data["grid"]["spacing"]
    factor = n / base_n
    data["grid"]["shape"] = [int(round(s * factor)) if s > 1 else 1 for s in shape]
    data["grid"]["spacing"] = [h / factor for h in spacing] if isinstance(spacing, list) else spacing / factor
    data["precision"], data["backend"] = "float64", "cpu"
    data["time"].update(end=end, rtol=rtol)
    data["output"].update(pictures=False, checkpoint=None, series_every=end, snapshot_every=end)
    # the doses before `end` (a short refinement run keeps each entry's first dose only)
    data["treatment"] = [{**d, "count": 1} for d in data["treatment"] if d.get("start", 0.0) < end]
    started = time.perf_counter()
    sim = Simulation(parse_config(data))
    state = sim.start()
    sim.advance(state, end)
    u = np.array(state.fields.u, dtype=np.float64)
    burden = float(u[0].sum()) * sim.grid.cell_volume * 1e-12 * float(sim.model.parameters.get("domain_copies", 1.0))
    return u, burden, list(sim.model.names), time.perf_counter() - started, state.fields.step


def block(u: np.ndarray, k: int) -> np.ndarray:
    s, nx, ny, nz = u.shape
    return u.reshape(s, nx // k, k, ny // k, k, nz // k, k).mean(axis=(2, 4, 6))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=Path("configs/chemoimmuno.yaml"))
    ap.add_argument("--n", type=int, default=16, help="coarsest cells per axis")
    ap.add_argument("--base-n", type=int, default=16, help="cells per axis in the config")
    ap.add_argument("--end", type=float, default=1.0)
    ap.add_argument("--rtol", type=float, default=0.005)
    args = ap.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"# {args.config}, day {args.end:g}, float64, rtol {args.rtol:g}; {cpu}")
    runs = {}
    for n in (args.n, 2 * args.n, 4 * args.n):
        u, burden, names, wall, steps = run(args.config, n, args.base_n, args.end, args.rtol)
        runs[n] = (u, burden)
        print(f"n={n}: burden {burden:.6e}, {steps} steps, {wall:.1f} s", flush=True)
    n0 = args.n
    scale = np.abs(runs[4 * n0][0]).reshape(len(names), -1).max(axis=1)
    scale[scale == 0] = 1.0
    diffs = {}
    for a, b in ((n0, 2 * n0), (2 * n0, 4 * n0)):
        ua, ub = runs[a][0], block(runs[b][0], 2)
        field = np.abs(block(ua, a // n0) - block(ub, a // n0)).reshape(len(names), -1).max(axis=1) / scale
        diffs[(a, b)] = (field, abs(runs[a][1] - runs[b][1]) / abs(runs[b][1]))
    print("| species | " + " | ".join(f"{a}->{b}" for a, b in diffs) + " | observed order |")
    print("|---|---|---|---|")
    (f1, b1), (f2, b2) = diffs.values()
    for i, name in enumerate(names):
        order = math.log2(f1[i] / f2[i]) if f2[i] > 0 and f1[i] > 0 else float("nan")
        print(f"| {name} | {f1[i]:.3e} | {f2[i]:.3e} | {order:.2f} |")
    order = math.log2(b1 / b2) if b2 > 0 and b1 > 0 else float("nan")
    print(f"| burden | {b1:.3e} | {b2:.3e} | {order:.2f} |")


if __name__ == "__main__":
    main()
