"""The hardening matrix (issue 21): every case of tests/hardening_cases.py, random ones drawn again per seed,
SIGINT / SIGKILL at seeded points of build, train, qat and restore, and concurrent builds into one dist/;
prints the table and writes benchmarks/results/fuzz_matrix.md and .json.

    python benchmarks/fuzz_matrix.py            # the full run (about 10 min on 2 cores)
    python benchmarks/fuzz_matrix.py --quick    # one draw of each case, one kill per command and signal

Counts per command: cases tried, passed (one clean error line, or a documented conversion), open (a defect in a
file this change could not touch, its fix named), unhandled (a traceback, hang, crash, partial output, a file
outside the named output, code run from a loaded file, with no fix named: must be 0).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
OWN_CACHE = "ANYIR_CACHE_DIR" not in os.environ  # builds never reuse a cache across runs (removed at the end)
if OWN_CACHE:
    os.environ["ANYIR_CACHE_DIR"] = tempfile.mkdtemp(prefix="anyir-fuzz-cache-")

import hardening_assets as A  # noqa: E402
import hardening_cases as H  # noqa: E402
import hardening_interrupts as K  # noqa: E402
from hardening_run import RealRunner, Server, run_case  # noqa: E402

TEST_FILE = "tests/test_hardening.py"


def test_ids() -> set:
    """Case ids that tests/test_hardening.py runs (its CASES selection)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("_th", ROOT / TEST_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return {c.id for c in mod.CASES}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one draw per case, one kill per command and signal")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", type=int, help="draws per random case (default 4; --quick 1)")
    ap.add_argument("--kills", type=int, help="kills per command and signal (default 2; --quick 1)")
    ap.add_argument("--no-fork", action="store_true", help="a fresh `python -m mobile.cli` per case (slower)")
    ap.add_argument("--only", help="run the cases whose id contains this text (no kills, no table written)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fuzz_matrix"))
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--baseline", metavar="REV", help="also run every case of a fixed defect against the code of "
                    "git revision REV (before the fixes), to show each failed there")
    args = ap.parse_args(argv)
    variants = args.variants or (1 if args.quick else 4)
    kills = args.kills or (1 if args.quick else 2)
    t_start = time.perf_counter()
    commit = _commit()  # the code the run starts with (a commit made while it runs is not what it ran)
    work = Path(tempfile.mkdtemp(prefix="anyir-fuzz-"))
    print(f"work folder {work}; building the assets ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    assets = A.build_assets(work)
    runner = RealRunner() if args.no_fork else Server()
    assets.runner = runner
    t_assets = time.perf_counter() - t0
    records = []
    try:
        cases = [c for c in H.all_cases(long=not args.quick) if not args.only or args.only in c.id]
        for c in cases:
            for v in range(variants if c.random_variant else 1):
                t = time.perf_counter()
                try:
                    verdict, res, d = run_case(c, assets, runner, seed=args.seed, variant=v)
                except Exception as e:  # noqa: BLE001 - a fault of the harness, not of anyir: counted, shown
                    records.append({"kind": "case", "id": c.id, "command": c.command, "variant": v, "ok": False,
                                    "outcome": "harness error", "detail": f"{type(e).__name__}: {e}"[:300],
                                    "wall_s": 0, "known": None, "fixed": c.fixed, "expect": c.expect, "doc": c.doc})
                    print(f"BAD  {c.id:58} harness error   {type(e).__name__}: {str(e)[:100]}", flush=True)
                    continue
                records.append({"kind": "case", "id": c.id, "command": c.command, "variant": v, "ok": verdict.ok,
                                "outcome": verdict.outcome, "detail": verdict.detail, "wall_s": round(time.perf_counter() - t, 2),
                                "known": c.known, "fixed": c.fixed, "expect": c.expect, "doc": c.doc})
                mark = "ok " if verdict.ok else ("open" if c.known else "BAD")
                print(f"{mark:4} {c.id:58} {verdict.outcome:15} {verdict.detail[:110]}", flush=True)
                shutil.rmtree(d, ignore_errors=True)
        if args.baseline:
            records += run_baseline(args.baseline, cases, assets, work, args.seed)
        if not args.only:
            records += run_kills(assets, runner, kills, args.seed)
            rng = random.Random(f"early/{args.seed}")
            for i in range(2 if args.quick else 6):
                delay = rng.uniform(0.2, 1.8)
                ok, detail = K.early_interrupt(assets, delay, tag=f"-{i}")
                records.append({"kind": "kill", "id": f"info/SIGINT-at-start-{i}", "command": "any command (SIGINT while "
                                "it starts)", "ok": ok, "outcome": "ok" if ok else detail.split(":")[0], "detail": detail,
                                "delay_s": round(delay, 2), "from": "process start", "finished_first": "finished" in detail,
                                "leftovers": [], "leftovers_after_rerun": [], "wall_s": 0, "known": None,
                                "fixed": EARLY_FIX})
                print(f"{'ok ' if ok else 'BAD':4} info SIGINT at +{delay:.2f}s {detail}", flush=True)
            for i in range(1 if args.quick else 2):
                t = time.perf_counter()
                ok, detail = K.concurrent_builds(assets, runner, tag=str(i))
                records.append({"kind": "concurrent", "id": f"build/two-builds-into-one-dist-{i}", "command": "build (2 at once)",
                                "ok": ok, "outcome": "ok" if ok else "replaced or raced", "detail": detail,
                                "wall_s": round(time.perf_counter() - t, 2), "known": None if ok else CONCURRENT_FIX,
                                "fixed": None})
                print(f"{'ok ' if ok else 'open':4} build: two builds into one dist/ {detail[:120]}", flush=True)
    finally:
        runner.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
            if OWN_CACHE:
                shutil.rmtree(os.environ["ANYIR_CACHE_DIR"], ignore_errors=True)
    wall = time.perf_counter() - t_start
    if args.only:
        return 0
    meta = {"created": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "commit": commit, "seed": args.seed, "variants_per_random_case": variants, "kills_per_command_and_signal": kills,
            "quick": args.quick, "runner": "python -m mobile.cli per case" if args.no_fork else
            "fork server (mobile.cli imported once, one forked process per case)",
            "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "root": H.IS_ROOT},
            "wall_s": round(wall, 1), "assets_s": round(t_assets, 1)}
    md = table(records, meta, test_ids())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(md)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "records": records}, indent=1) + "\n")
    print("\n" + md)
    print(f"wrote {out.with_suffix('.md')} and .json ({wall:.0f} s)", file=sys.stderr)
    return 1 if any(not r["ok"] and not r["known"] for r in records) else 0


STALE_FIX = ("needs fix in mobile/bundle.py build(): a SIGKILLed build's hidden dist/.<name>-<version>.partial-<pid> "
             "folder stays; the next build should remove those whose pid is gone")
CONCURRENT_FIX = ("needs fix in mobile/bundle.py build(): re-check `dest.exists() and not cfg.force` just before the "
                  "rename and turn an OSError from `tmp.rename(dest)` into the same one-line error")


def run_baseline(rev: str, cases: list, assets, work: Path, seed: int) -> list:
    """Every case (first draw), run with the code of `rev` (`git archive`): a fixed defect's cases should fail
    there, and a case that failed there and passes now should name the defect it found (the table lists any
    that do not)."""
    base = work / "baseline-code"
    base.mkdir()
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
    server = Server(code=base)
    out = []
    try:
        for c in cases:
            try:
                verdict, res, d = run_case(c, assets, server, seed=seed)
            except Exception as e:  # noqa: BLE001
                print(f"before {c.id:58} harness error   {e}", flush=True)
                continue
            out.append({"kind": "baseline", "id": c.id, "command": c.command, "ok": verdict.ok, "outcome": verdict.outcome,
                        "detail": verdict.detail, "fixed": c.fixed, "known": c.known, "rev": rev})
            print(f"{'before':6} {c.id:58} {verdict.outcome:15} {verdict.detail[:100]}", flush=True)
            shutil.rmtree(d, ignore_errors=True)
    finally:
        server.close()
    for i, delay in enumerate((0.5, 1.0)):
        ok, detail = K.early_interrupt(assets, delay, tag=f"-before-{i}", code=base)
        out.append({"kind": "baseline", "id": f"info/SIGINT-at-start-{i}", "command": "any command (SIGINT while it starts)",
                    "ok": ok, "outcome": "ok" if ok else detail.split(":")[0], "detail": detail, "known": None,
                    "fixed": EARLY_FIX, "rev": rev})
        print(f"before info SIGINT at +{delay:.2f}s {detail}", flush=True)
    return out


EARLY_FIX = "Ctrl-C while the CLI imports torch: a KeyboardInterrupt traceback"
OTHER_TESTS = {EARLY_FIX: "test_ctrl_c_while_the_cli_starts_is_one_line"}


def run_kills(assets, runner, n: int, seed: int) -> list:
    rng = random.Random(f"kills/{seed}")
    out = []
    for command, (lo, hi) in K.KILL_WINDOWS.items():
        for sig in (signal.SIGINT, signal.SIGKILL):
            for i in range(n):
                after_start = i % 2 == 0 or K.STARTED[command] is None  # half mid-work, half from the start
                delay = rng.uniform(lo, hi) if not after_start else rng.uniform(0.0, hi / 2)
                t = time.perf_counter()
                try:
                    k = K.kill_run(command, sig, delay, assets, runner, tag=f"-{i}", after_start=after_start)
                except Exception as e:  # noqa: BLE001 - a fault of the harness: counted and shown, the run goes on
                    out.append({"kind": "kill", "id": f"{command}/{sig.name}-{i}", "command": f"{command} ({sig.name})",
                                "ok": False, "outcome": "harness error", "detail": f"{type(e).__name__}: {e}"[:300],
                                "delay_s": round(delay, 2), "from": "work begun" if after_start else "process start",
                                "finished_first": False, "leftovers": [], "leftovers_after_rerun": [],
                                "wall_s": round(time.perf_counter() - t, 2), "known": None, "fixed": None})
                    print(f"BAD  {command}/{sig.name}-{i:<22} harness error {type(e).__name__}: {str(e)[:100]}", flush=True)
                    continue
                stale = bool(k.leftovers_after_rerun) and command == "build"
                rec = {"kind": "kill", "id": f"{command}/{sig.name}-{i}", "command": f"{command} ({sig.name})",
                       "ok": k.ok, "outcome": k.outcome, "detail": k.detail, "delay_s": round(k.delay, 2),
                       "from": "work begun" if after_start else "process start", "finished_first": k.finished_first,
                       "leftovers": k.leftovers, "leftovers_after_rerun": k.leftovers_after_rerun,
                       "wall_s": round(time.perf_counter() - t, 2), "known": None, "fixed": None}
                out.append(rec)
                if stale:  # judged apart: the interrupted run itself was handled, the sweep is open work
                    out.append({**rec, "kind": "stale", "id": rec["id"] + "/stale-partial", "ok": False,
                                "outcome": "stale partial", "detail": f"left {k.leftovers_after_rerun} after the rerun",
                                "known": STALE_FIX})
                print(f"{'ok ' if k.ok else 'BAD':4} {rec['id']:30} +{k.delay:5.2f}s ({rec['from']}) {k.outcome}"
                      f"{' (ended first)' if k.finished_first else ''} {k.detail[:100]}"
                      f"{' left ' + str(k.leftovers) if k.leftovers else ''}", flush=True)
    return out


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def table(records: list, meta: dict, in_test: set) -> str:
    baseline = [r for r in records if r["kind"] == "baseline"]
    records = [r for r in records if r["kind"] != "baseline"]
    defects = list(dict.fromkeys(r["fixed"] for r in records if r.get("fixed")))
    number = {f: f"D{i + 1}" for i, f in enumerate(defects)}
    rows = collections.OrderedDict()
    for r in records:
        row = rows.setdefault(r["command"], {"tried": 0, "passed": 0, "open": 0, "unhandled": 0, "fixed": set(),
                                             "outcomes": collections.Counter()})
        row["tried"] += 1
        if r["ok"]:
            row["passed"] += 1
            kind = ("one line, exit 130" if r["id"].startswith("info/SIGINT-at-start") else
                    "whole or absent, rerun ok" if r["kind"] in ("kill", "concurrent") else
                    "documented conversion" if r["outcome"] == "ok" else "clean error")
            row["outcomes"][kind] += 1
        elif r["known"]:
            row["open"] += 1
        else:
            row["unhandled"] += 1
            row["outcomes"][r["outcome"]] += 1
        if r.get("fixed"):
            row["fixed"].add(r["fixed"])
    total = {k: sum(v[k] for v in rows.values()) for k in ("tried", "passed", "open", "unhandled")}
    lines = ["# Hardening matrix (issue 21)", "",
             f"`python benchmarks/fuzz_matrix.py{' --quick' if meta['quick'] else ''}` at {meta['commit']}, {meta['created']}: "
             f"seed {meta['seed']}, {meta['variants_per_random_case']} draws per random case (bit flips, truncations, "
             f"garbage), {meta['kills_per_command_and_signal']} kills per command and signal; {meta['runner']}; "
             f"{meta['host']['cpus']} CPUs, {meta['wall_s']:.0f} s (assets {meta['assets_s']:.0f} s).", "",
             f"**{total['tried']} cases, {total['passed']} passed, {total['unhandled']} unhandled, {total['open']} open** "
             "(open: a defect in a file this change could not edit; its fix is named below and its test is a strict "
             "xfail that flips when the fix lands).", "",
             "| command / loader | tried | passed | open | unhandled | how they passed | crashes found and fixed |",
             "| --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for cmd, row in rows.items():
        how = ", ".join(f"{n} {k}" for k, n in row["outcomes"].most_common())
        fixed = ", ".join(sorted((number[f] for f in row["fixed"]), key=lambda d: int(d[1:])))
        lines.append(f"| {cmd} | {row['tried']} | {row['passed']} | {row['open']} | {row['unhandled']} | {how} | {fixed} |")
    lines.append(f"| **total** | **{total['tried']}** | **{total['passed']}** | **{total['open']}** | "
                 f"**{total['unhandled']}** | | {len(defects)} |")
    if defects:
        before = collections.defaultdict(list)
        for r in baseline:
            before[r["fixed"]].append(r)
        rev = baseline[0]["rev"] if baseline else None
        lines += ["", "## Defects found and fixed in this change", "",
                  "Each with the test that runs one of its cases (`tests/test_hardening.py::test_case[<case>]`)"
                  + (f" and what its cases did with the code of `{rev}`, before the fixes." if rev else ".") + "", "",
                  "| | defect | cases | test | before the fix |", "| --- | --- | ---: | --- | --- |"]
        for f in defects:
            ids = sorted({r["id"] for r in records if r.get("fixed") == f})
            test = next((f"test_case[{i}]" for i in ids if i in in_test), OTHER_TESTS.get(f, "matrix only"))
            b = before.get(f, [])
            was = (", ".join(f"{n} {k}" for k, n in collections.Counter(
                "passed" if r["ok"] else r["outcome"] for r in b).most_common()) if b else "not run")
            lines.append(f"| {number[f]} | {f} | {len(ids)} | {test} | {was} |")
    if baseline:
        now = {r["id"]: r["ok"] for r in records if r["kind"] == "case" and r.get("variant", 0) == 0}
        unlabeled = sorted(r["id"] for r in baseline if not r["ok"] and now.get(r["id"]) and not r["fixed"])
        passed_before = sorted(r["id"] for r in baseline if r["ok"] and r["fixed"])
        lines += ["", f"Against `{baseline[0]['rev']}`: {len(baseline)} cases run, {sum(not r['ok'] for r in baseline)} "
                  f"failed there; failed there and pass now without naming a defect: {', '.join(unlabeled) or 'none'}; "
                  f"named a fixed defect but passed there too: {', '.join(passed_before) or 'none'}."]
    opened = collections.OrderedDict()
    for r in records:
        if not r["ok"] and r["known"]:
            opened.setdefault(r["known"], []).append(r["id"])
    if opened:
        lines += ["", "## Open: fixes needed in files this change did not edit", ""]
        for fix, ids in opened.items():
            lines.append(f"- {fix} ({len(ids)} case{'s' if len(ids) > 1 else ''}: {', '.join(sorted(set(ids))[:4])}"
                         f"{' ...' if len(set(ids)) > 4 else ''})")
    bad = [r for r in records if not r["ok"] and not r["known"]]
    if bad:
        lines += ["", "## Unhandled", ""] + [f"- {r['id']}: {r['outcome']}: {r['detail'][:200]}" for r in bad]
    kills = [r for r in records if r["kind"] == "kill"]
    if kills:
        lines += ["", "## Interrupts", "",
                  "Each run is started as a user starts it (`python -m mobile.cli ...`), sent the signal at a seeded time "
                  "(from the process start, or after its work began: the partial bundle folder, the training log, the QAT "
                  "config), then checked: SIGINT ends in exit 130 and one line; the output is whole or absent (a bundle "
                  "that passes `anyir bundle verify`, checkpoints that load, a quantization state that reads, an image of "
                  "the right size); nothing is written outside it; a rerun (`--resume`, or `--force`) completes it.", "",
                  "| run | signal at | outcome | hidden leftovers after the kill | after the rerun |",
                  "| --- | --- | --- | --- | --- |"]
        for r in kills:
            lines.append(f"| {r['id']} | +{r['delay_s']:.2f} s ({r['from']}){' (ended first)' if r['finished_first'] else ''} "
                         f"| {r['outcome']}{': ' + r['detail'][:80] if r['detail'] else ''} | "
                         f"{', '.join(r['leftovers'])[:80] or '-'} | {', '.join(r['leftovers_after_rerun'])[:80] or '-'} |")
    lines += ["", "## What is simulated, and how", "",
              "- Full disk: the command runs under RLIMIT_FSIZE (2,000 bytes) with SIGXFSZ ignored, so a write that "
              "grows a file past the limit fails with EFBIG, as a full disk fails it with ENOSPC (an OSError from "
              "write/flush/close). Unlike a full disk it does not stop a file from being created empty.",
              "- Read-only output folder: " + ("these runs are root, which writes through mode 0555, so the output's "
                                               "folder is a regular file instead (mkdir/open fail with ENOTDIR/EEXIST); "
                                               "a true EROFS/EACCES is not produced here." if meta["host"]["root"] else
                                               "the output folder is chmod 0555 (EACCES)."),
              "- Tampering that also rewrites the checksums (`+record`): the record's (and the manifest's) sha256 are "
              "made to match the damaged bytes, so what is tested is the runtime's own loader, not the checksum.",
              "- .pte / .tflite / .mlpackage are one-conv programs written by the project's own backends at 32x32 "
              "(an AnyIR export costs 15-40 s; the loaders' parsing does not depend on the model); the bundle comes "
              "from `anyir build` with its ExecuTorch export swapped for that program (every other stage is the "
              "build's own), and the warm builds that are interrupted rebuild it from the build cache.",
              "- Pickles carrying code: their `__reduce__` would create a marker file; the case fails if it appears.",
              "- Core ML itself does not run here (no macOS): the .mlpackage loader is the project's ML Program "
              "interpreter (conversion/mil_interpreter.py), which is what `anyir restore`/`profile` run off Apple hardware."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
