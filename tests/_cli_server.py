"""`tumorsim` command lines run as real processes, fast: forked from a server that has
imported tumorsim once.

    with CliServer() as cli:
        result = cli.run(["run", "c.yaml"], cwd=folder, env={"TUMORSIM_MAX_STEPS": "10"})
        result.status, result.stdout, result.stderr

The server is a plain `python -c` process (not pytest: no captured logging, no recorded
warnings) that imports the command line and the modules a run needs, then for each request
forks: the child changes into `cwd`, sets the environment, optionally limits its address
space, points its file descriptors 0, 1 and 2 at files, and exits with `cli.main(argv)`. So
each case is its own process with the exit status, stderr and crash behaviour of
`tumorsim` (a segfault shows as a negative status), at about 10 ms instead of a second of
imports. A case that runs past its timeout is killed (status -9).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SERVER = r"""
import json, os, resource, signal, sys, time
import h5py, numpy, sympy, pydantic, yaml
from solver import cli
import solver.run, solver.config, solver.model, solver.io.checkpoint, solver.io.run_resume

for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(request["cwd"])
            os.environ.update(request["env"])
            if request["address_space"]:  # bytes above what the process maps now
                with open("/proc/self/status") as status:
                    mapped = [int(l.split()[1]) * 1024 for l in status if l.startswith("VmSize:")][0]
                resource.setrlimit(resource.RLIMIT_AS, (mapped + request["address_space"],) * 2)
            for fd, name, mode in ((0, request["stdin"], os.O_RDONLY), (1, request["stdout"], os.O_WRONLY),
                                   (2, request["stderr"], os.O_WRONLY)):
                target = os.open(name, mode)
                os.dup2(target, fd)
                os.close(target)
            status = cli.main(request["argv"])
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback
            traceback.print_exc()
            status = 99
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    deadline = time.monotonic() + request["timeout"]
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            break
        time.sleep(0.005)
    print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), flush=True)
"""


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stderr.splitlines()


class CliServer:
    """A server process forking one `tumorsim` process per request (see the module docstring)."""

    def __init__(self) -> None:
        path = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        self.process = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        self.scratch = Path(tempfile.mkdtemp(prefix="tumorsim-cli-"))

    def run(self, argv: list[str], cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None,
            timeout: float = 60, address_space: int = 0) -> Result:
        """Run `tumorsim ARGV` in `cwd`; address_space: a limit on the bytes it may map beyond
        what it maps when it starts (0: none)."""
        out, err = self.scratch / "stdout", self.scratch / "stderr"
        out.write_text("")
        err.write_text("")
        request = {"argv": argv, "cwd": str(cwd), "env": env or {}, "stdin": stdin or os.devnull,
                   "stdout": str(out), "stderr": str(err), "timeout": timeout, "address_space": address_space}
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline()
        assert reply, "the CLI server ended"
        return Result(json.loads(reply)["status"], out.read_text(errors="replace"), err.read_text(errors="replace"))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)
        for p in self.scratch.iterdir():
            p.unlink()
        self.scratch.rmdir()

    def __enter__(self) -> CliServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
