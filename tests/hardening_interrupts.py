"""Interrupted and concurrent runs for the hardening suite (issue 21): SIGINT and SIGKILL at seeded points of
`build`, `train`, `qat` and `restore`, then the output and a rerun checked; Ctrl-C while the CLI starts; two
builds into one dist/. Each runs real `python -m mobile.cli` processes (hardening_run.run_real)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hardening_assets import TINY_QAT_FLAGS, Assets
from hardening_cases import image_size

# --- interrupted and concurrent runs ----------------------------------------------------------------------

KILL_WINDOWS = {"build": (0.3, 9.0), "train": (0.3, 6.0), "qat": (0.3, 12.0), "restore": (0.3, 5.0)}


def _kill_argv(command: str, a: Assets, d: Path) -> list:
    if command == "build":
        shutil.copytree(a.cache, d / "cache")
        return ["build", "--checkpoint", a.ck, *a.build_args, "--out", "dist", "--cache-dir", "cache"]
    if command == "train":
        return ["train", "--out", "run", "--preset", "anyir-tiny", "--tasks", "noise25", "--patch", "16", "--batch", "1",
                "--steps", "150", "--save-every", "10", "--log-every", "1", "--quiet", "--threads", "1"]
    if command == "qat":
        flags = list(TINY_QAT_FLAGS)
        flags[flags.index("--steps") + 1] = "12"
        return ["qat", "--checkpoint", a.ck, "--out", "q", "--save-every", "2", *flags]
    if command == "restore":
        import numpy as np
        from PIL import Image
        y, x = np.mgrid[0:3000, 0:4000]  # 12 megapixels: about 16,000 tiles of 32 px
        Image.fromarray(np.stack([(x % 256), (y % 256), ((x + y) % 256)], -1).astype(np.uint8)).save(d / "big.png")
        return ["restore", "big.png", "--bundle", a.bundle, "--out", "out/restored.png", "--quiet"]
    raise ValueError(command)


OUTPUT_OF = {"build": "dist", "train": "run", "qat": "q", "restore": "out/restored.png"}
DONE = {"build": "bundle: ", "train": "checkpoint: ", "qat": "quantization state: ", "restore": " -> "}  # its last line


@dataclass
class KillOutcome:
    ok: bool
    outcome: str          # "ok" or what went wrong
    detail: str
    delay: float
    finished_first: bool  # the command ended before the signal was sent
    leftovers: list       # hidden partial files/folders the kill left in the output (named, judged apart)
    leftovers_after_rerun: list


# what shows that a command has begun its real work (a kill before it tests the interpreter's start, not ours)
# (restore makes its output folder once its imports are done, before it reads the bundle)
STARTED = {"build": "dist/.*partial*", "train": "run/log.jsonl", "qat": "q/config.json", "restore": "out"}


def kill_run(command: str, sig: int, delay: float, a: Assets, runner, tag: str = "",
             after_start: bool = False) -> KillOutcome:
    """Start `command` as a user would, send `sig` after `delay` s, then check what it left: an output that is
    complete or absent (hidden partial work is listed apart), a one-line 'interrupted' for SIGINT, nothing
    written outside its output, and a rerun (`--resume` for train and qat, `--force` for build and restore)
    that succeeds."""
    from hardening_run import last_line, run_real, snapshot
    d = a.root / "kills" / f"{command}-{signal.Signals(sig).name}{tag}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    argv = _kill_argv(command, a, d)
    before = snapshot(a.root)
    p = run_real(argv, d, popen=True)
    finished_first = False
    if after_start and STARTED[command]:
        deadline = time.time() + 120
        while p.poll() is None and not any(d.glob(STARTED[command])) and time.time() < deadline:
            time.sleep(0.05)
    try:
        p.wait(timeout=delay)
        finished_first = True
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, sig)  # the whole process group, as Ctrl-C (or a supervisor's kill) reaches it
    try:
        stdout, err = p.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return KillOutcome(False, "hang", f"no exit {180} s after {signal.Signals(sig).name}", delay, False, [], [])
    out = OUTPUT_OF[command]
    after = snapshot(a.root)
    rel = str(d.relative_to(a.root))
    new = [q for q, v in after.items() if before.get(q) != v and v[0] != "dir"]
    area = out.split("/")[0]  # the output and its folder (restore's temp file sits beside the image)
    outside = [q for q in new if not (q.startswith(os.path.join(rel, area)) or q.startswith(os.path.join(rel, "cache"))
                                      or q.startswith(os.path.join(rel, "big.png")))]
    fail = lambda what, detail: KillOutcome(False, what, detail, delay, finished_first, [], [])  # noqa: E731
    if "Traceback (most recent call last)" in err:
        return fail("traceback", last_line(err)[:200])
    if outside:
        return fail("escaped", f"wrote outside {out}: {outside[:3]}")
    if finished_first:
        if p.returncode != 0:
            return fail("failed", f"exit {p.returncode} before any signal: {last_line(err)[:200]}")
    elif sig == signal.SIGINT and p.returncode == -signal.SIGINT and DONE[command] in stdout:
        finished_first = True  # the work was done and said so: the signal landed in the interpreter's exit
    elif sig == signal.SIGINT:
        line = last_line(err)
        if p.returncode != 130 or not line.startswith("anyir: error: "):
            return fail("unclear interrupt", f"exit {p.returncode}, last line {line[:160]!r}")
    elif p.returncode != -signal.SIGKILL:
        return fail("failed", f"exit {p.returncode} after SIGKILL")
    problem, leftovers = _check_output(command, d / out)
    if problem:
        return fail("partial output", problem)
    rerun = list(argv) + (["--resume"] if command in ("train", "qat") else ["--force"])
    res = runner.run(rerun, d, timeout=300)
    if res.rc != 0:
        return fail("rerun failed", f"{' '.join(map(str, rerun[:2]))} ... exit {res.rc}: {last_line(res.stderr)[:200]}")
    problem, left_after = _check_output(command, d / out, final=True)
    if problem:
        return fail("rerun incomplete", problem)
    return KillOutcome(True, "ok", "", delay, finished_first, leftovers, left_after)


def _check_output(command: str, out: Path, final: bool = False) -> tuple[str | None, list]:
    """(problem, hidden leftovers) of an output after a kill (final: after the rerun, which must complete it)."""
    if command == "build":
        from mobile.bundle import verify_bundle
        entries = sorted(out.iterdir()) if out.is_dir() else []
        visible = [e for e in entries if not e.name.startswith(".")]
        for e in visible:
            r = verify_bundle(e) if (e / "manifest.json").is_file() else {"ok": False, "problems": ["no manifest.json"]}
            if not r["ok"]:
                return f"{e.name}: a bundle that does not verify: {r['problems'][0]}", []
        if final and not visible:
            return "no bundle after the rerun", []
        return None, [e.name for e in entries if e.name.startswith(".")]
    if command == "restore":
        # (an interrupted restore removes the output folder it made, so the parent may be gone: nothing left)
        hidden = [e.name for e in out.parent.iterdir() if e.name.startswith(f".{out.name}")] if out.parent.is_dir() else []
        if out.exists():
            try:
                w, h, _ = image_size(out)
            except Exception as e:  # noqa: BLE001
                return f"{out.name}: not a readable image ({e})", hidden
            if (w, h) != (4000, 3000):
                return f"{out.name}: {w}x{h}, not 4000x3000", hidden
        elif final:
            return "no output after the rerun", hidden
        return None, hidden
    if command == "train":
        from anyir_core.checkpoint import load_checkpoint
        hidden = [str(p.relative_to(out)) for p in out.rglob(".*")] if out.is_dir() else []
        for f in ([out / "model.safetensors"] if (out / "model.safetensors").exists() else []) + \
                sorted(out.glob("checkpoints/step_*/model.safetensors")):
            try:
                load_checkpoint(f)
            except Exception as e:  # noqa: BLE001
                return f"{f.relative_to(out)}: does not load ({str(e)[:120]})", hidden
        if final and not (out / "model.safetensors").exists():
            return "no model.safetensors after --resume", hidden
        return None, hidden
    if command == "qat":
        from anyir_core.checkpoint import read_safetensors
        from conversion.quantize import read_quant_info
        hidden = [str(p.relative_to(out)) for p in out.rglob(".*")] if out.is_dir() else []
        if (out / "quant.safetensors").exists() or (out / "quant.json").exists():
            try:
                read_quant_info(out)
                read_safetensors(out / "quant.safetensors")
            except Exception as e:  # noqa: BLE001
                return f"a half-written state: {str(e)[:160]}", hidden
        elif final:
            return "no quantization state after --resume", hidden
        return None, hidden
    raise ValueError(command)


def concurrent_builds(a: Assets, runner, n: int = 2, tag: str = "") -> tuple[bool, str]:
    """`n` identical builds into one dist/ at once (one cache, as on one machine). Exactly one may make the
    bundle; the others must end in one line (the bundle exists) and leave no trace; the bundle must verify."""
    from hardening_run import last_line, run_real
    from mobile.bundle import verify_bundle
    d = a.root / "concurrent" / f"builds{tag}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    shutil.copytree(a.cache, d / "cache")
    argv = ["build", "--checkpoint", a.ck, *a.build_args, "--out", "dist", "--cache-dir", "cache"]
    procs = [run_real(argv, d, popen=True) for _ in range(n)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    rcs = [p.returncode for p in procs]
    if any("Traceback (most recent call last)" in e for e in errs):
        return False, "traceback: " + next(last_line(e) for e in errs if "Traceback" in e)[:200]
    entries = sorted((d / "dist").iterdir())
    visible = [e for e in entries if not e.name.startswith(".")]
    if len(visible) != 1 or not verify_bundle(visible[0])["ok"]:
        return False, f"dist holds {[e.name for e in entries]}"
    if entries != visible:
        return False, f"left {[e.name for e in entries if e not in visible]}"
    if sorted(rcs) != [0] + [2] * (n - 1):
        return False, (f"exits {rcs}: {n - rcs.count(0)} of {n} builds refused; without --force the later ones must "
                       f"end in one line (the bundle exists), not replace the first one's bundle")
    bad = [last_line(e) for e, rc in zip(errs, rcs) if rc != 0 and "exists" not in last_line(e)]
    if bad:
        return False, f"refused without saying why: {bad[0][:160]}"
    return True, f"exits {rcs}"



def early_interrupt(a: Assets, delay: float, tag: str = "", code: Path | None = None) -> tuple[bool, str]:
    """Ctrl-C `delay` s after `anyir info` starts (while it imports torch): exit 130 and one line, or (if it
    finished first) exit 0. `code`: another tree's code (the matrix's --baseline)."""
    from hardening_run import ROOT, last_line, run_real
    d = a.root / "kills" / f"info-early{tag}"
    d.mkdir(parents=True, exist_ok=True)
    p = run_real(["info", "--preset", "anyir-tiny", "--no-ops"], d, popen=True, code=code or ROOT)
    time.sleep(delay)
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=120)
    line = last_line(err)
    if "Traceback (most recent call last)" in err:
        return False, f"traceback: {line[:160]}"
    if p.returncode == 0:  # `import torch` itself swallows a KeyboardInterrupt at some points (measured: 1 in 4)
        return True, "ran on: the signal was lost inside `import torch`"
    if p.returncode != 130 or line != "anyir: error: interrupted":
        return False, f"exit {p.returncode}: {line[:160]!r}"
    return True, "exit 130, 'interrupted'"
