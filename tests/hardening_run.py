"""How the hardening cases run and how they are judged (the cases themselves: tests/hardening_cases.py).

Shared by tests/test_hardening.py (a fixed, small draw) and benchmarks/fuzz_matrix.py (the longer seeded run
that writes benchmarks/results/fuzz_matrix.md). A case is a command line run in its own folder under one root,
plus what must come of it:

- "error": a non-zero exit whose stderr ends in one line `anyir: error: ...` (naming the problem), no
  "Traceback" anywhere, and no file created or changed anywhere under the root (new empty folders are noted,
  not failed);
- "ok": a documented conversion: exit 0, the named output present (and `check` passing), nothing written
  anywhere else under the root;
- "any": either of the two (a bit flip in a JPEG's entropy-coded data decodes to other pixels: the format has
  no checksum, so success is a legitimate outcome).

A timeout is a hang; death by a signal is a crash; a file that appears from a loaded pickle or YAML tag is
code executed from a loaded file. Those are "unhandled", whatever the case expected.

How commands run: `Server` imports `mobile.cli` (and the heavy libraries it uses) once, then forks one child
per case that calls `mobile.cli.main(argv)` (the `anyir` entry point in pyproject.toml) with its own cwd,
environment, resource limits and file descriptors, and exits as the interpreter would (atexit handlers run, an
uncaught exception prints its traceback and exits 1). Only the import is shared, which saves about 1.6 s per
case. Signals, concurrent builds and the `--no-fork` matrix run use `run_real`: `python -m mobile.cli`.
"""
from __future__ import annotations

import atexit
import json
import os
import random
import resource
import select
import shutil
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# --- running a command ------------------------------------------------------------------------------------

@dataclass
class Result:
    rc: int | None            # exit status; None when it timed out or died by a signal
    stdout: str
    stderr: str
    wall: float
    timed_out: bool = False
    signal: int | None = None


def _preexec(fsize: int | None, forked: bool = False):
    def fn():
        os.setpgrp()  # its own process group: a timeout kills helpers too
        # as from a terminal: a parent started in the background (`cmd &`) ignores SIGINT, its children inherit
        # that, and Python then never raises KeyboardInterrupt
        signal.signal(signal.SIGINT, signal.default_int_handler if forked else signal.SIG_DFL)
        if fsize is not None:
            # a write past `fsize` bytes fails with EFBIG instead of killing the process (SIGXFSZ ignored),
            # which is how a full disk fails a write (ENOSPC): an OSError from write/flush/close
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return fn


def case_env(cwd: Path, extra: dict | None = None, code: Path = ROOT) -> dict:
    """The command's environment: the project's code from `code` (another tree: the matrix's --baseline run),
    its own TMPDIR (where the runtime log goes) inside its folder."""
    env = {**os.environ, "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": str(cwd / "tmp"),
           "COLUMNS": "200"}
    env.update(extra or {})
    return env


def run_real(argv: list, cwd: Path, timeout: float = 120, env: dict | None = None, fsize: int | None = None,
             popen: bool = False, code: Path = ROOT):
    """`python -m mobile.cli ARGV` in `cwd` (a fresh interpreter, as a user runs it)."""
    (Path(cwd) / "tmp").mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "mobile.cli", *map(str, argv)]
    kw = dict(cwd=cwd, env=case_env(Path(cwd), env, code), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
              stdin=subprocess.DEVNULL, text=True, errors="replace", preexec_fn=_preexec(fsize))
    if popen:
        return subprocess.Popen(cmd, **kw)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return Result(None, out, err, time.perf_counter() - t0, timed_out=True)
    rc = p.returncode
    return Result(rc if rc >= 0 else None, out, err, time.perf_counter() - t0, signal=-rc if rc < 0 else None)


_SERVER_IMPORTS = ("mobile.cli", "mobile.cli_bundle", "mobile.cli_convert", "mobile.cli_profile", "mobile.bundle",
                   "mobile.profiling", "mobile.profile_compare", "anyir_core.train", "anyir_core.evaluate",
                   "anyir_core.tiling", "anyir_core.inspect", "conversion.base", "conversion.verify",
                   "conversion.quantize", "conversion.executorch_backend", "conversion.tflite_backend",
                   "conversion.coreml_backend", "conversion.mil_interpreter", "coremltools", "ai_edge_litert.interpreter",
                   "executorch.runtime", "jsonschema", "yaml", "PIL.Image", "matplotlib.pyplot")


def _serve() -> None:
    """The fork server's main loop (`python tests/hardening_run.py serve`): one JSON request per line on
    stdin, one JSON reply per line on the original stdout."""
    reply = os.fdopen(os.dup(1), "w")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)  # the libraries' import-time chatter
    sys.path.insert(0, os.environ.get("PYTHONPATH", str(ROOT)).split(os.pathsep)[0])
    import importlib
    import warnings
    warnings.simplefilter("ignore")
    for name in _SERVER_IMPORTS:
        try:
            importlib.import_module(name)
        except Exception:  # an optional runtime missing here: the child imports (and reports) it itself
            pass
    warnings.resetwarnings()
    reply.write(json.dumps({"ready": os.getpid()}) + "\n")
    reply.flush()
    for line in sys.stdin:
        req = json.loads(line)
        reply.write(json.dumps(_fork_one(req)) + "\n")
        reply.flush()


def _fork_one(req: dict) -> dict:
    cwd = Path(req["cwd"])
    (cwd / "tmp").mkdir(parents=True, exist_ok=True)
    # pipes, as a terminal or CI log would be: RLIMIT_FSIZE (a full disk) limits files, not the error output
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: as `anyir ARGV` would start, minus the imports
        code = 1
        try:
            _preexec(req.get("fsize"), forked=True)()
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(req["env"])
            import tempfile
            tempfile.tempdir = None
            i = os.open(os.devnull, os.O_RDONLY)
            for fd, target in ((i, 0), (out_w, 1), (err_w, 2)):
                os.dup2(fd, target)
            for fd in (out_r, err_r, out_w, err_w):
                os.close(fd)
            sys.stdin = open(0, closefd=False)
            sys.stdout = open(1, "w", closefd=False, errors="backslashreplace")
            sys.stderr = open(2, "w", closefd=False, errors="backslashreplace")
            sys.argv = ["anyir", *req["argv"]]
            from mobile.cli import main
            try:
                main(req["argv"])
                code = 0
            except SystemExit as ex:
                if ex.code is None:
                    code = 0
                elif isinstance(ex.code, int):
                    code = ex.code
                else:
                    print(ex.code, file=sys.stderr)
                    code = 1
            except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught exception
                traceback.print_exc()
                code = 1
            atexit._run_exitfuncs()
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except Exception:  # noqa: BLE001 - a full "disk" (RLIMIT_FSIZE) can refuse the flush too
                pass
            os._exit(code)
    os.close(out_w)
    os.close(err_w)
    chunks = {out_r: [], err_r: []}
    open_fds = [out_r, err_r]

    def pump(wait: float) -> None:
        r, _, _ = select.select(open_fds, [], [], wait) if open_fds else ([], [], [])
        for fd in r:
            data = os.read(fd, 1 << 16)
            if data:
                chunks[fd].append(data)
            else:
                open_fds.remove(fd)
    deadline = t0 + req["timeout"]
    status, timed_out = None, False
    while status is None:
        pump(0.02)
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
        elif time.perf_counter() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status = os.waitpid(pid, 0)
            timed_out = True
    drain_until = time.perf_counter() + 2  # what is still in the pipes (a helper process may hold them open)
    while open_fds and time.perf_counter() < drain_until:
        pump(0.05)
    for fd in (out_r, err_r):
        os.close(fd)
    wall = time.perf_counter() - t0
    out = b"".join(chunks[out_r]).decode(errors="replace")
    err = b"".join(chunks[err_r]).decode(errors="replace")
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    return {"rc": None if timed_out else rc, "stdout": out, "stderr": err, "wall": wall, "timed_out": timed_out,
            "signal": None if timed_out else sig}


class Server:
    """A process that has imported `mobile.cli` and forks one child per command (see the module docstring)."""

    def __init__(self, code: Path = ROOT):
        self.code = Path(code)
        self.p = subprocess.Popen([sys.executable, __file__, "serve"], cwd=self.code, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                  env={**os.environ, "PYTHONPATH": str(self.code), "PYTHONDONTWRITEBYTECODE": "1"})
        ready = self._read(300)
        assert "ready" in ready, ready

    def _read(self, timeout: float) -> dict:
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            raise RuntimeError("the fork server did not answer")
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("the fork server exited")
        return json.loads(line)

    def run(self, argv: list, cwd: Path, timeout: float = 120, env: dict | None = None,
            fsize: int | None = None) -> Result:
        req = {"argv": [str(a) for a in argv], "cwd": str(cwd), "env": case_env(Path(cwd), env, self.code),
               "timeout": timeout, "fsize": fsize}
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        return Result(**self._read(timeout + 60))

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.stdin.close()
            self.p.wait(timeout=30)


class RealRunner:
    """The same interface as Server, one fresh interpreter per command (`--no-fork`)."""

    def __init__(self, code: Path = ROOT):
        self.code = Path(code)

    def run(self, argv, cwd, timeout=120, env=None, fsize=None) -> Result:
        return run_real(argv, cwd, timeout, env, fsize, code=self.code)

    def close(self) -> None:
        pass


# --- judging ----------------------------------------------------------------------------------------------

def snapshot(root: Path) -> dict:
    """path -> (kind, size, mtime_ns) for everything under `root` (symlinks not followed), case-local tmp/
    folders left out (TMPDIR of each case: the runtime log and temp files live there)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "tmp"]
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            kind = "link" if p.is_symlink() else "dir" if p.is_dir() else "file"
            out[str(p.relative_to(root))] = (kind, 0 if kind == "dir" else st.st_size,
                                             0 if kind == "dir" else st.st_mtime_ns)
    return out


def last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


@dataclass
class Verdict:
    ok: bool
    outcome: str   # "error" (a clean one-line error), "ok" (documented conversion), or what went wrong
    detail: str = ""


def judge(case: "Case", res: Result, before: dict, after: dict, root: Path, case_dir: Path) -> Verdict:
    rel_case = str(case_dir.relative_to(root))
    new = {p: v for p, v in after.items() if before.get(p) != v}
    outputs = [os.path.normpath(os.path.join(rel_case, o)) for o in case.outputs]
    inside = lambda p: any(p == o or p.startswith(o + os.sep) for o in outputs)  # noqa: E731
    gone = [p for p in before if p not in after and not (res.rc == 0 and inside(p))]  # (a run rotates checkpoints)
    if case.marker and (case_dir / case.marker).exists():
        return Verdict(False, "code executed", f"{case.marker} appeared: a loaded file ran code")
    if res.timed_out:
        return Verdict(False, "hang", f"no exit within {case.timeout:.0f} s")
    if res.signal:
        return Verdict(False, "crash", f"killed by signal {res.signal}: {last_line(res.stderr)[:200]}")
    if "Traceback (most recent call last)" in res.stderr:
        return Verdict(False, "traceback", last_line(res.stderr)[:300])
    if res.rc != 0:
        line = last_line(res.stderr)
        written = [p for p, v in new.items() if v[0] != "dir"]
        if case.expect == "ok":
            return Verdict(False, "failed", f"expected a documented conversion, got exit {res.rc}: {line[:200]}")
        if not line.startswith("anyir: error: ") or "\n" in line:
            return Verdict(False, "unclear error", f"exit {res.rc}, last stderr line: {line[:200]!r}")
        if case.want and case.want.lower() not in line.lower():
            return Verdict(False, "wrong error", f"expected {case.want!r} in {line[:200]!r}")
        if written or gone:
            return Verdict(False, "partial output", f"left {sorted(written)[:3]} (removed {gone[:3]}) after: {line[:160]}")
        return Verdict(True, "error", line[len("anyir: error: "):][:200])
    # exit 0
    outside = sorted(p for p, v in new.items() if v[0] != "dir" and not inside(p))
    if outside or gone:
        return Verdict(False, "escaped", f"wrote outside its output: {outside[:3]} (removed {gone[:3]})")
    if case.expect == "error":
        return Verdict(False, "accepted", f"exit 0 where an error was expected: {last_line(res.stdout)[:160]}")
    if case.outputs and not any((root / o).exists() for o in outputs):
        return Verdict(False, "no output", f"exit 0 but none of {case.outputs} exists")
    if case.check:
        problem = case.check(case_dir, res)
        if problem:
            return Verdict(False, "wrong output", problem)
    return Verdict(True, "ok", case.doc or last_line(res.stdout)[:160])


@dataclass
class Case:
    command: str                       # the matrix row (a command, or "loader: ...")
    name: str
    setup: Callable                    # (Assets, case folder, random.Random) -> argv (a list) for `anyir`
    expect: str = "error"              # "error" | "ok" | "any"
    want: str = ""                     # a word the error line must contain
    outputs: tuple = ()                # what the command may write (relative to the case folder)
    check: Callable | None = None      # (case folder, Result) -> problem or None, on success
    doc: str = ""                      # the documented conversion, for the table
    marker: str | None = None          # a file whose appearance means code ran from a loaded file
    fsize: int | None = None           # RLIMIT_FSIZE for the command (a full disk)
    timeout: float = 120
    known: str | None = None           # "needs fix in FILE: ..." while the defect is open
    fixed: str | None = None           # the defect this change fixed (for the table)
    random_variant: bool = False       # drawn again per seed in the long run

    @property
    def id(self) -> str:
        return f"{self.command}/{self.name}"


# --- running a case ---------------------------------------------------------------------------------------

def run_case(case: Case, assets, runner, seed: int = 0, variant: int = 0) -> tuple[Verdict, Result, Path]:
    rng = random.Random(f"{seed}/{case.id}/{variant}")
    d = assets.root / "cases" / f"{case.id.replace('/', '__').replace(' ', '_').replace(':', '')}-{seed}-{variant}"
    if d.exists():
        _rmtree(d)
    d.mkdir(parents=True)
    cwd = os.getcwd()
    try:
        os.chdir(d)
        argv = case.setup(assets, d, rng)
    finally:
        os.chdir(cwd)
    before = snapshot(assets.root)
    res = runner.run(argv, d, timeout=case.timeout, fsize=case.fsize)
    after = snapshot(assets.root)
    v = judge(case, res, before, after, assets.root, d)
    return v, res, d


def _rmtree(p: Path) -> None:
    for dirpath, dirnames, _ in os.walk(p):
        for name in dirnames:
            try:
                os.chmod(Path(dirpath) / name, 0o755)
            except OSError:
                pass
    shutil.rmtree(p, ignore_errors=True)


if __name__ == "__main__" and sys.argv[1:] == ["serve"]:
    _serve()
