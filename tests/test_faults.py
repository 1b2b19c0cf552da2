"""Bad inputs and faults through the command line, each in a real process: a table.

Every case runs `tumorsim` as its own process (forked from tests/_cli_server.py, so with
the exit status, stderr and crash behaviour of the real command) in a folder holding a
config, a map file, a finished run with three checkpoints (`out/`), the run file of a run
of other physics (`other.h5`) and a file `victim.txt` that links may point at. Each case
must give its exit status, EXACTLY ONE line on stderr (`tumorsim: error: ...`, naming the
problem), no traceback, leave every file of the folder as it was (names and SHA-256;
`changes` names the paths a case may create or change, for faults in a run that goes
ahead), and run no code of the config's (hostile payloads try to create `canary`).

The items are those of the reliability issue: 1 concurrent runs, 2 full disk, 3 work a
config can cause, 4 checkpoint integrity, 5 bad input not reported as such, 6 systemic
blow-up, 7 security, 8 messages, 9 batch systems. Faults that need more than one command
(two runs at once, a real full disk mid-run, live reading, bit flips everywhere) are in
tests/test_reliability.py.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml
from _cli_server import CliServer
from test_bad_inputs import TINY, file_hashes, latest, newer_copy

RUN = ("run", "config.yaml", "--out", "out", "--progress-every", "0")
RESUME = (*RUN, "--resume")
# TINY with a systemic scalar, a dosed agent and diagnostics, so that a checkpoint holds
# every kind of dataset (systemic/y, systemic/pk/drug, diagnostics/auc and last)
BASE: dict[str, Any] = copy.deepcopy(TINY)
BASE["model"].update(
    systemic={"C": {"initial": 1.0, "rate": "0.1 - 0.1*C + drug"}},
    agents={"drug": {"pk": {"k_el": 1.0}}},
    diagnostics={"mass": {"integral": "u"}, "exposure": {"auc_of": "mass"}},
)
BASE["treatment"] = [{"agent": "drug", "kind": "bolus", "dose": 1.0, "start": 0.2}]


# ---------------------------------------------------------------------------- setups


def write_config(folder: Path, data: dict[str, Any] | str) -> None:
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    (folder / "config.yaml").write_text(text, encoding="utf-8")


def tiny(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    """A setup writing BASE changed by `change` (which edits the mapping in place)."""

    def setup(folder: Path) -> None:
        data = copy.deepcopy(BASE)
        change(data)
        write_config(folder, data)

    return setup


def raw(text: str) -> Callable[[Path], None]:
    return lambda folder: write_config(folder, text)


def species(**change: Any) -> Callable[[Path], None]:
    return tiny(lambda d: d["model"]["species"]["u"].update(change))


def reaction(text: str) -> Callable[[Path], None]:
    return species(reaction=text)


def flip(path: Path, offset: int, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def data_offset(path: Path, name: str) -> int:
    """The file offset of the first stored byte of dataset `name` (its first chunk)."""
    with h5py.File(path, "r") as f:
        ds = f[name]
        if ds.chunks is not None:
            return int(ds.id.get_chunk_info(0).byte_offset)
        return int(ds.id.get_offset())


def flip_checkpoint_dataset(name: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        path = newer_copy(folder, latest(folder).read_bytes())
        flip(path, data_offset(path, name) + 1, 3)

    return setup


def change_checkpoint_attribute(name: str, value: Callable[[Any], Any]) -> Callable[[Path], None]:
    """A copy of the latest checkpoint with one attribute rewritten through h5py (as a tool
    or a hand would), its digest left as it was."""

    def setup(folder: Path) -> None:
        path = newer_copy(folder, latest(folder).read_bytes())
        with h5py.File(path, "r+") as f:
            f.attrs[name] = value(f.attrs[name])

    return setup


def flip_run_file(name: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        path = folder / "out" / "run.h5"
        flip(path, data_offset(path, name) + 2, 5)

    return setup


def hold_lock(folder: Path) -> Callable[[], None]:
    """Another live process holding the folder's lock (as a running tumorsim does)."""
    lock = folder / "out" / ".tumorsim.lock"
    code = textwrap.dedent("""
        import fcntl, json, os, socket, sys, time
        fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}).encode())
        print("locked", flush=True)
        time.sleep(120)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder.kill


def hold_hdf5_lock(folder: Path) -> Callable[[], None]:
    """Another process with out/run.h5 open for writing in h5py (an HDF5 file lock, not SWMR)."""
    code = "import h5py, sys, time\nf = h5py.File(sys.argv[1], 'r+')\nprint('open', flush=True)\ntime.sleep(120)\n"
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder / "out" / "run.h5")], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
    return holder.kill


def link(name: str, target: str = "victim.txt") -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        path = folder / "out" / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        path.symlink_to(folder / target)

    return setup


def fresh_out(setup: Callable[[Path], Any] | None = None) -> Callable[[Path], Any]:
    """No previous run in out/ (then `setup`)."""

    def prepared(folder: Path) -> Any:
        shutil.rmtree(folder / "out")
        return setup(folder) if setup is not None else None

    return prepared


def h5_input(kind: str) -> Callable[[Path], None]:
    """BASE with its map read from w.h5, which reaches outside itself (or claims a huge shape)."""

    def setup(folder: Path) -> None:
        path = folder / "w.h5"
        with h5py.File(path, "w") as f:
            if kind == "external storage":
                size = os.path.getsize("/etc/hostname")
                f.create_dataset("w", shape=(size,), dtype="u1", external=[("/etc/hostname", 0, size)])
            elif kind == "external link":
                f["w"] = h5py.ExternalLink(str(folder / "other.h5"), "/maps/w")
            elif kind == "virtual":
                layout = h5py.VirtualLayout(shape=(4, 4, 4), dtype="f8")
                layout[:] = h5py.VirtualSource(str(folder / "other.h5"), "/maps/w", shape=(4, 4, 4))
                f.create_virtual_dataset("w", layout)
            elif kind == "huge":
                f.create_dataset("w", shape=(100000, 100000, 100000), dtype="f8", chunks=(1, 1, 64))
        data = copy.deepcopy(BASE)
        data["model"]["maps"]["w"] = {"file": "w.h5"}
        write_config(folder, data)

    return setup


def npy_claiming(shape: tuple[int, ...], dtype: str = "<f8") -> Callable[[Path], None]:
    """w.npy whose header declares `shape` and `dtype`, followed by a few bytes only."""

    def setup(folder: Path) -> None:
        header = {"descr": dtype, "fortran_order": False, "shape": shape}
        with open(folder / "w.npy", "wb") as f:
            np.lib.format.write_array_header_1_0(f, header)
            f.write(b"\0" * 64)

    return setup


def other_run_file(folder: Path) -> None:
    shutil.copy(folder / "other.h5", folder / "out" / "run.h5")


def alias_bomb(levels: int = 9) -> str:
    lines = ["name: tiny", "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    lines.append(f"model: {{parameters: {{k: *a{levels - 1}}}}}")
    return "\n".join(lines) + "\n"


def deep_yaml(depth: int) -> str:
    return "name: tiny\nmodel: " + "[" * depth + "]" * depth + "\n"


# ---------------------------------------------------------------------------- the table


@dataclass
class Case:
    """One bad input or fault: `tumorsim ARGS` after `setup`; its status and message."""

    name: str
    item: int  # of the issue (module docstring)
    status: int
    fragments: tuple[str, ...]
    setup: Callable[[Path], Any] | None = None  # may return a cleanup callable
    args: tuple[str, ...] = RUN
    env: dict[str, str] = field(default_factory=dict)
    changes: tuple[str, ...] = ()  # paths (relative to the folder) a case may create or change
    address_space: int = 0
    timeout: float = 60


def _product_of_sums(n: int) -> str:
    return "*".join(f"(u + w + {i})" for i in range(n))


CASES = [
    # 1: concurrent runs
    Case("overwrite while a run holds the folder", 1, 1, ("run in progress (pid", "host "), hold_lock,
         args=(*RUN, "--overwrite")),
    Case("resume while a run holds the folder", 1, 1, ("run in progress (pid",), hold_lock, args=RESUME),
    Case("a link planted as the lock file", 1, 1, ("cannot lock output folder", "symbolic link"),
         link(".tumorsim.lock"), args=(*RUN, "--overwrite")),
    Case("run into a folder holding a run", 1, 1, ("already holds a run (run.h5)", "--overwrite")),
    # 2: full disk (a real tmpfs: tests/test_reliability.py; here what a resume refuses)
    # from the first checkpoint: a resume that rewrites run.h5 (one of the finished run
    # from its end state has nothing to rewrite, and says so)
    Case("resume on a disk too full to rewrite run.h5", 2, 1, ("cannot resume: rewriting", "free"),
         lambda f: _first_checkpoint_as(f, "out/first.h5") or _fill_disk_under(f),
         args=(*RUN, "--resume", "out/first.h5")),
    Case("output folder cannot be created", 2, 1, ("cannot create output folder",),
         args=(*RUN[:3], "config.yaml/sub", *RUN[4:])),
    # 3: work a config can cause
    Case("YAML alias bomb of 9^9 values", 3, 2, ("expands to more than 100000 values", "TUMORSIM_MAX_YAML_VALUES"),
         raw(alias_bomb())),
    Case("YAML self-referencing alias", 3, 2, ("the YAML nested more than 64 levels", "TUMORSIM_MAX_YAML_DEPTH"),
         raw("name: tiny\nmodel: &m {species: {u: *m}}\n")),
    Case("YAML nested 100 deep", 3, 2, ("nested more than 64 levels deep", "TUMORSIM_MAX_YAML_DEPTH"),
         raw(deep_yaml(100))),
    Case("config of 9 MiB", 3, 2, ("is larger than 8388608 bytes", "TUMORSIM_MAX_CONFIG_BYTES"),
         raw("name: tiny\n# " + "x" * (9 << 20) + "\n")),
    Case("max() of 30 linear terms", 3, 2, ("min()/max() 30 operands", "at most 16", "TUMORSIM_MAX_MINMAX_OPERANDS"),
         reaction("max(" + ", ".join(f"{i + 1}*u - {i}" for i in range(30)) + ")")),
    Case("max() of 399 terms under the length limit", 3, 2, ("min()/max() 399 operands",),
         reaction("max(" + ",".join(f"{i}*u" for i in range(399)) + ")")),
    Case("max() nested through definitions", 3, 2, ("with its definitions substituted", "min()/max() operands"),
         tiny(lambda d: (d["model"].update(definitions={f"d{i}": (f"max(d{i - 1}, {i}*u)" if i else "max(u, 1)")
                                                        for i in range(20)}),
                         d["model"]["species"]["u"].update(reaction="-d19")))),
    Case("a product of sums that multiplies out to 3.5e5 terms", 3, 2, ("terms when its products are multiplied out",
         "TUMORSIM_MAX_EXPANDED_TERMS"), reaction(_product_of_sums(12))),
    Case("an expression of too many nodes", 3, 2, ("nodes", "TUMORSIM_MAX_EXPRESSION_NODES"),
         reaction("+".join(["u"] * 600)), env={"TUMORSIM_MAX_EXPRESSION_NODES": "1000"}),
    Case("series_every 1e-7 to end 1e6", 3, 2, ("output.series_every: 1e-07 with time.end 1e+06 gives 1e+13 records",
         "TUMORSIM_MAX_RECORDS"), tiny(lambda d: (d["time"].update(end=1e6), d["output"].update(series_every=1e-7)))),
    Case("snapshot_every 1e-9", 3, 2, ("output.snapshot_every: 1e-09",),
         tiny(lambda d: d["output"].update(snapshot_every=1e-9))),
    Case("a treatment count of 2e8", 3, 2, ("treatment[0]", "count 200000000", "TUMORSIM_MAX_DOSES"),
         tiny(lambda d: (d["model"].update(agents={"drug": {"pk": {"k_el": 1.0}}}),
                         d.update(treatment=[{"agent": "drug", "kind": "bolus", "dose": 1.0, "every": 1e-9,
                                              "count": 200000000}])))),
    Case("dt 1e-300", 3, 2, ("time.dt: 1e-300", "steps", "TUMORSIM_MAX_STEPS"),
         tiny(lambda d: d["time"].update(dt=1e-300))),
    Case("dt auto under a stability bound of 1e-301", 3, 2, ("time.dt:", "auto: set by", "TUMORSIM_MAX_STEPS"),
         tiny(lambda d: d["model"]["parameters"].update(D=1e300))),
    Case("a run name of 10 MB", 3, 2, ("name:", "is not allowed"),
         tiny(lambda d: d.update(name="x" * 500 + "/" + "y" * (3 << 20)))),
    Case(".npy declaring 1e15 cells", 3, 2, ("has shape (100000, 100000, 100000); the grid is (4, 4, 4)",),
         npy_claiming((100000, 100000, 100000))),
    Case(".npy of objects", 3, 2, ("has dtype object; a real numeric array is required",), npy_claiming((4, 4, 4), "|O")),
    Case(".h5 declaring 1e15 cells", 3, 2, ("dataset 'w' has shape (100000, 100000, 100000)",), h5_input("huge")),
    Case("a limit set to nonsense", 3, 2, ("TUMORSIM_MAX_STEPS='lots' must be a number >= 1",),
         env={"TUMORSIM_MAX_STEPS": "lots"}, args=(*RUN, "--overwrite")),
    Case("records past a lowered limit", 3, 2, ("gives 11 records", "at most 10 allowed"),
         env={"TUMORSIM_MAX_RECORDS": "10"}, args=(*RUN, "--overwrite")),
    # 4: checkpoint integrity
    *(Case(f"a bit flipped in checkpoint dataset {name}", 4, 2, ("is damaged or incomplete", "SHA-256"),
           flip_checkpoint_dataset(name), args=RESUME)
      for name in ("fields", "systemic/y", "systemic/pk/drug", "diagnostics/auc", "diagnostics/last")),
    *(Case(f"checkpoint attribute {name} changed", 4, 2, ("is damaged or incomplete",),
           change_checkpoint_attribute(name, change), args=RESUME)
      for name, change in (("t", lambda v: v + 0.05), ("next_event", lambda v: v + 1), ("n_series", lambda v: v - 1),
                           ("guard_peak", lambda v: v * 2), ("step", lambda v: v + 1),
                           ("physics_json", lambda v: v.replace('"k": 0.5', '"k": 0.6')))),
    Case("checkpoint format 1 (no digest)", 4, 2, ("format version 1", "no checksum"),
         change_checkpoint_attribute("format_version", lambda v: 1), args=RESUME),
    Case("run.h5 of another run (other physics)", 4, 1, ("belongs to another run", "physics or maps"),
         other_run_file, args=RESUME),
    Case("a bit flipped in run.h5's time series", 4, 1, ("is damaged", "start the run again"),
         flip_run_file("timeseries/total_u"), args=RESUME),
    Case("a bit flipped in run.h5's snapshots", 4, 1, ("is damaged",), flip_run_file("fields/u"), args=RESUME),
    Case("a bit flipped in run.h5's map", 4, 1, ("is damaged",), flip_run_file("maps/w"), args=RESUME),
    Case("run.h5 without a series the checkpoint counts", 4, 1, ("lacks records of total_u",),
         lambda f: _delete(f / "out" / "run.h5", "timeseries/total_u"), args=RESUME),
    Case("run.h5 cut short", 4, 1, ("holds 1 time-series records, not the",),
         lambda f: _cut(f / "out" / "run.h5"), args=RESUME),
    Case("run.h5 missing", 4, 1, ("run.h5' is missing",), lambda f: (f / "out" / "run.h5").unlink(), args=RESUME),
    Case("resume with other physics", 4, 2, ("physics differs: model.parameters.k (checkpoint: 0.5, config: 0.7)",),
         tiny(lambda d: d["model"]["parameters"].update(k=0.7)), args=RESUME),
    # 5: bad input reported as bad input
    Case("YAML nested 20000 deep", 5, 2, ("nested",), raw(deep_yaml(20000))),
    Case("grid.spacing 1e-200", 5, 2, ("grid.spacing", "1e-200 is out of range"),
         tiny(lambda d: d["grid"].update(spacing=1e-200))),
    Case("end 1e308 with series_every 1e-308", 5, 2, ("records", "TUMORSIM_MAX_RECORDS"),
         tiny(lambda d: (d["time"].update(end=1e308), d["output"].update(series_every=1e-308)))),
    Case("model.builtin a path to a YAML list", 5, 2, ("no built-in model", "built-in models: depillis2006"),
         lambda f: (Path(f / "list.yaml").write_text("- 1\n- 2\n"),
                    tiny(lambda d: d.update(model={"builtin": str(f / "list")}))(f))),
    Case("model.builtin an absolute path", 5, 2, ("no built-in model '/etc/passwd'",),
         tiny(lambda d: d.update(model={"builtin": "/etc/passwd"}))),
    Case("model.builtin through ../", 5, 2, ("no built-in model '../../configs/quickstart'",),
         tiny(lambda d: d.update(model={"builtin": "../../configs/quickstart"}))),
    Case("model.variant a list", 5, 2, ("has no variant [1, 2]",),
         tiny(lambda d: d.update(model={"builtin": "depillis2006", "variant": [1, 2]}))),
    Case("the config is /dev/null", 5, 2, ("a config must be a mapping", "an empty file"),
         args=("run", "/dev/null", "--out", "fresh", "--progress-every", "0")),
    Case("the config is a folder", 5, 2, ("is a folder; expected a YAML file",),
         args=("run", "out", "--out", "fresh", "--progress-every", "0")),
    Case("the config is not UTF-8", 5, 2, ("cannot read config",),
         lambda f: (f / "config.yaml").write_bytes(b"name: \xff\xfe\n")),
    Case("the config is a list", 5, 2, ("a config must be a mapping",), raw("- 1\n- 2\n")),
    Case("a key written twice", 5, 2, ("key 'name' is written twice",), raw("name: a\nname: b\n")),
    # 6: systemic blow-up (the run goes ahead in out/ until it blows up)
    Case("a systemic ODE that blows up (X*X)", 6, 1, ("systemic scalar X became +infinite at t=", "last good checkpoint"),
         fresh_out(tiny(lambda d: (d["model"].update(systemic={"X": {"initial": 1.0, "rate": "X*X"}}),
                                   d["time"].update(end=2.0), d["output"].update(series_every=0.05))))),
    # 7: security
    Case("--overwrite with a link planted at run.h5", 7, 1, ("output file", "run.h5' is a symbolic link"),
         link("run.h5"), args=(*RUN, "--overwrite")),
    Case("--overwrite with a link planted at config.yaml", 7, 1, ("config.yaml' is a symbolic link",),
         link("config.yaml"), args=(*RUN, "--overwrite")),
    Case("--overwrite with the checkpoints folder a link", 7, 1, ("checkpoints' is a symbolic link",),
         lambda f: (shutil.copytree(f / "out" / "checkpoints", f / "elsewhere"), link("checkpoints", "elsewhere")(f)),
         args=(*RUN, "--overwrite")),
    Case("resume with a link planted at run.h5", 7, 1, ("is a symbolic link",), link("run.h5", "other.h5"),
         args=RESUME),
    Case("an input .h5 with external storage (/etc/hostname)", 7, 2, ("reaches outside itself",
         "keeps its values in external files"), h5_input("external storage")),
    Case("an input .h5 with an external link", 7, 2, ("is an external link to",), h5_input("external link")),
    Case("an input .h5 with a virtual dataset", 7, 2, ("is a virtual dataset",), h5_input("virtual")),
    Case("a YAML python tag", 7, 2, ("YAML syntax error", "could not determine a constructor"),
         raw("name: !!python/object/apply:os.system ['touch canary']\n")),
    Case("an expression calling __import__", 7, 2, ("'__import__' is not an allowed function",),
         reaction("__import__('os')")),
    Case("an expression calling os.system", 7, 2, ("attribute access '.system' is not allowed",),
         reaction("__import__('os').system('touch canary')")),
    Case("an expression reaching attributes", 7, 2, ("attribute access '.__class__' is not allowed",),
         reaction("u.__class__")),
    Case("an expression with a lambda", 7, 2, ("only calls of plain function names",), reaction("(lambda: 1)()")),
    Case("an expression with a comprehension", 7, 2, ("is not allowed",), reaction("[open('canary','w') for i in u]")),
    Case("an expression computing 9**9**9", 7, 2, ("too large for a float",), reaction("9**9**9")),
    # 8: messages
    Case("an initial value that overflows float32", 8, 2, ("initial: value 1e+39 at cell (0, 0, 0) overflows float32",),
         species(initial=1e39)),
    Case("a non-finite initial value", 8, 2, ("initial: the expression gives inf at cell",), species(initial="exp(1000)")),
    Case("a negative initial value", 8, 2, ("initial: value -1 at cell (0, 0, 0) is negative", "nonnegative: false"),
         species(initial=-1.0)),
    Case("a reaction that is not finite", 8, 2, ("of u is not finite on the initial fields",), reaction("u/(u - 0.5)")),
    Case("resume blocked by another process's HDF5 lock", 8, 1, ("HDF5 lock",), hold_hdf5_lock, args=RESUME),
    Case("out of memory for a cause other than the grid", 8, 1, ("out of memory: this machine cannot hold",),
         tiny(lambda d: (d["grid"].update(shape=[160, 160, 160]), d["model"]["maps"].update(w="1.0"))),
         address_space=100 << 20, args=(*RUN, "--overwrite")),
    # 9: batch systems
    Case("--resume auto with --overwrite", 9, 2, ("cannot be combined with --overwrite",),
         args=(*RESUME, "auto", "--overwrite")),
    Case("--resume auto into a folder held by a run", 9, 1, ("run in progress",), hold_lock,
         args=(*RESUME, "auto")),
]


def _delete(path: Path, name: str) -> None:
    with h5py.File(path, "r+") as f:
        del f[name]


def _cut(path: Path) -> None:
    with h5py.File(path, "r+") as f:
        for ds in f["timeseries"].values():
            ds.resize((1,))


def test_the_table_covers_every_item_with_60_cases() -> None:
    assert len(CASES) >= 60
    assert {c.item for c in CASES} == set(range(1, 10))
    assert len({c.name for c in CASES}) == len(CASES)


# ---------------------------------------------------------------------------- running it


@pytest.fixture(scope="module")
def cli():
    with CliServer() as server:
        yield server


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, cli: CliServer) -> Path:
    """config.yaml (BASE), w.npy, out/ (a finished run, 3 checkpoints), other.h5 (run.h5
    of the same model with k = 0.7), victim.txt."""
    folder = tmp_path_factory.mktemp("faults")
    np.save(folder / "w.npy", np.linspace(0.5, 1.5, 64).reshape(4, 4, 4))
    data = copy.deepcopy(BASE)
    write_config(folder, data)
    assert cli.run(list(RUN), folder).status == 0
    other = copy.deepcopy(data)
    other["model"]["parameters"]["k"] = 0.7
    write_config(folder, other)
    assert cli.run(["run", "config.yaml", "--out", "other", "--progress-every", "0"], folder).status == 0
    shutil.move(folder / "other" / "run.h5", folder / "other.h5")
    shutil.rmtree(folder / "other")
    write_config(folder, data)
    (folder / "victim.txt").write_text("precious\n")
    return folder


@pytest.mark.parametrize("case", CASES, ids=[f"{c.item}: {c.name}" for c in CASES])
def test_fault_is_one_line_and_changes_nothing(case: Case, base: Path, tmp_path: Path, cli: CliServer) -> None:
    folder = tmp_path / "case"
    shutil.copytree(base, folder, symlinks=True)
    cleanups: list[Callable[[], Any]] = []
    try:
        if case.setup == "full disk":
            cleanups.append(_fill_disk_under(folder))
        elif case.setup is not None:
            cleanup = case.setup(folder)
            if callable(cleanup):
                cleanups.append(cleanup)
        before = file_hashes(folder)
        result = cli.run(list(case.args), folder, env=case.env, address_space=case.address_space,
                         timeout=case.timeout)
        after = file_hashes(folder)
    finally:
        for cleanup in reversed(cleanups):
            cleanup()
    assert len(result.lines) == 1, result.stderr[-3000:]
    line = result.lines[0]
    assert line.startswith("tumorsim: error: ") and "Traceback" not in result.stdout + result.stderr
    assert len(line) < 2100
    for fragment in case.fragments:
        assert fragment in line, line
    assert result.status == case.status, line
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    allowed = {k for k in changed if any(k == p or k.startswith(p + "/") for p in case.changes)}
    if case.item == 6:  # the run goes ahead in its own (fresh) folder until it blows up
        allowed |= {k for k in changed if k.startswith("out/")}
        _assert_no_checkpoint_blew_up(folder / "out")
    assert changed - allowed == set(), sorted(changed)
    assert not list(folder.rglob("canary")), "a config ran code"
    assert (folder / "victim.txt").read_text() == "precious\n"


def _assert_no_checkpoint_blew_up(out: Path) -> None:
    from solver.io.checkpoint import list_checkpoints, read_checkpoint

    found = list_checkpoints(out / "checkpoints")
    assert found
    for path in found:
        ck = read_checkpoint(path)
        assert np.isfinite(ck.systemic["y"]).all() and np.isfinite(ck.fields).all()
    with h5py.File(out / "run.h5", "r", swmr=True) as f:
        assert np.isfinite(f["timeseries/X"][()]).all()


def _first_checkpoint_as(folder: Path, name: str) -> None:
    from solver.io.checkpoint import list_checkpoints

    shutil.copy2(list_checkpoints(folder / "out" / "checkpoints")[0], folder / name)


def _fill_disk_under(folder: Path) -> Callable[[], None]:
    """out/ on a small tmpfs holding the run and a filler that leaves less free than run.h5."""
    out, saved = folder / "out", folder / "saved-out"
    shutil.move(out, saved)
    out.mkdir()
    size = sum(p.stat().st_size for p in saved.rglob("*") if p.is_file()) + (1 << 20)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},nr_inodes=1000", "tmpfs", str(out)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        shutil.rmtree(out)
        shutil.move(saved, out)
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")

    def unmount() -> None:
        subprocess.run(["umount", str(out)], check=True)
        shutil.rmtree(saved)

    try:
        for p in saved.iterdir():
            (shutil.copytree if p.is_dir() else shutil.copy2)(p, out / p.name)
        room = shutil.disk_usage(out).free - (out / "run.h5").stat().st_size // 2  # leaves half run.h5's size
        fd = os.open(out / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            block = b"\0" * 4096
            while room > 0:
                room -= os.write(fd, block[: min(len(block), room)])
        finally:
            os.close(fd)
    except BaseException:
        unmount()
        raise
    return unmount
