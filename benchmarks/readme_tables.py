"""The README's measured tables, written from the files the benchmarks leave in benchmarks/results/: no number
in the README is typed by hand, and tests/test_readme.py fails when the README and the results disagree.

    python benchmarks/readme_tables.py            # rewrite the README's generated sections
    python benchmarks/readme_tables.py --check    # exit 1 when they are stale

A generated section sits between `<!-- generated: NAME -->` and `<!-- end generated: NAME -->`; NAME picks the
writer below and its results file. A results file that does not exist yet gives a line saying which benchmark
writes it.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"


def _load(name: str) -> dict | None:
    p = RESULTS / name
    return json.loads(p.read_text()) if p.is_file() else None


def _host(h: dict) -> str:
    return ", ".join(str(v) for v in (h.get("model") or h.get("machine") or h.get("cpu"), f"{h.get('cpus')} CPUs") if v)


def build_time() -> str:
    d = _load("build.json")
    if d is None:
        return "_not measured yet: `python benchmarks/bench_build.py` writes benchmarks/results/build.json_"
    cold, warm = d["cold"], d["warm"]
    rows = [f"Default `anyir build` on {_host(d['host'])} ({d['date']}; `python benchmarks/bench_build.py`): "
            f"cold **{cold['wall_s'] / 60:.1f} min** (install not included), warm rebuild **{warm['wall_s']:.0f} s** "
            f"(ratio {warm['wall_s'] / cold['wall_s']:.3f}); artifacts built in "
            f"{cold.get('workers', {}).get('workers', 1) if cold.get('workers') else 1} worker processes, so stage times overlap.",
            "", "| stage | cold s | warm s |", "| --- | ---: | ---: |"]
    warm_rows = {s["stage"]: s for s in warm["stages"]}
    for s in cold["stages"]:
        w = warm_rows.get(s["stage"], {})
        rows.append(f"| {s['stage']} | {s['seconds']:.1f} | {w.get('seconds', float('nan')):.1f}"
                    f"{' (cache)' if w.get('cached') else ''} |")
    verdicts = ", ".join(f"{a['id']} {'pass' if a['passed'] else 'FAIL'}" for a in cold["artifacts"])
    rows += ["", f"Verdicts of that build: {verdicts}."]
    return "\n".join(rows)


def int8_rule() -> str:
    d = _load("int8_spread.json")
    if d is None:
        return "_not measured yet: `python benchmarks/int8_spread.py BUNDLE` writes benchmarks/results/int8_spread.json_"
    from conversion.verify import INT8_TASK_DROP_BUDGET, THRESHOLDS
    runtime_pairs = [p for p in d["pairs"] if not p["a"].startswith("reference")]
    ref_pairs = [p for p in d["pairs"] if p["a"].startswith("reference")]
    rows = [f"int8 agreement floor **{THRESHOLDS['int8']:.0f} dB** against the fake-quantized reference and task-drop "
            f"budget **{INT8_TASK_DROP_BUDGET} dB** (conversion/verify.py), set from `python benchmarks/int8_spread.py` "
            f"on {_host(d['host'])} ({d['tiles']} verification tiles, minimum over tiles):", "",
            "| compared | PSNR dB |", "| --- | ---: |"]
    rows += [f"| {p['b']} vs reference | {p['psnr_min']:.2f} |" for p in ref_pairs]
    if runtime_pairs:
        lo = min(runtime_pairs, key=lambda p: p["psnr_min"])
        rows.append(f"| closest two runtimes disagree least at: {lo['a']} vs {lo['b']} | {lo['psnr_min']:.2f} |")
    rows += [f"| contrast: {c['what']} | {c['psnr_min_vs_reference']:.2f} |" for c in d["contrasts"]]
    rows += ["", "Verdicts by that rule: " + "; ".join(
        f"{v['runtime']} {'pass' if v['passed'] else 'FAIL'} ({v['agreement_db']:.1f} dB, worst drop {v['worst_task_drop_db']:.2f} dB)"
        for v in d["verdicts"]) + "."]
    for o in d.get("other_hosts", []):  # benchmarks/int8_other_host.py: the same file and tiles on another CPU
        paths = "; ".join(f"{p} {'pass' if r['passed'] else 'FAIL'} ({r['agreement_min_db']:.1f} dB, worst drop "
                          f"{r['worst_task_drop_db']:.2f} dB)" for p, r in o["paths"].items())
        vs = "; ".join(f"{p} " + ("" if "identical" not in s else "identical, " if s["identical"]
                                  else f"{s['psnr_min_db']:.2f} dB, ") + f"{s['tiles_bitwise_identical']} tiles bit for bit"
                       for p, s in o["vs_packing_host"].items())
        flags = ", ".join(f for f, on in o["host"].get("flags", {}).items() if on and f.startswith(("avx512", "amx")))
        rows += ["", f"{o['artifact']} on {_host(o['host'])}{f' ({flags})' if flags else ''} "
                     f"(`python benchmarks/int8_other_host.py`, {o['tiles']} tiles): {paths}"
                     + (f"; against the packing host's outputs: {vs}" if vs else "") + "."]
    return "\n".join(rows)


def calibration() -> str:
    d = _load("calibration.json")
    if d is None:
        return "_not measured yet: `python benchmarks/bench_calibration.py` writes benchmarks/results/calibration.json_"
    rows = [f"What calibration and QAT steps buy (`python benchmarks/bench_calibration.py`, {_host(d['host'])}; "
            f"run when the build's default recipe was {d['build_default']}): worst task's drop against fp32 on the held-out tiles, and the "
            f"smallest agreement with the largest setting's int8 module. QAT s is wall time of `anyir qat` in that "
            f"run, which shared the CPUs with other jobs: read it as cost order, not as a timing.", "",
            "| calibration batches / task | QAT steps | QAT s | worst drop dB | PSNR vs largest dB |",
            "| ---: | ---: | ---: | ---: | ---: |"]
    for r in d["rows"]:
        rows.append(f"| {r['calibration']} | {r['steps']} | {r['qat_seconds']:.0f} | {r['worst_drop']:.3f} | "
                    f"{'-' if r['psnr_vs_largest'] is None else r['psnr_vs_largest']} |")
    return "\n".join(rows)


def hardening() -> str:
    p = RESULTS / "fuzz_matrix.md"
    if not p.is_file():
        return "_not run yet: `python benchmarks/fuzz_matrix.py` writes benchmarks/results/fuzz_matrix.md_"
    text = p.read_text()
    head = text.split("\n## ", 1)[0]  # the run line, the counts and the per-command table; the defects list,
    lines = [ln for ln in head.strip().splitlines() if not ln.startswith("# ")]  # interrupts and method stay there
    return "\n".join(lines).strip() + ("\n\nEvery defect found, the test that holds its fix, the interrupts and how each "
                                       "fault is simulated: [benchmarks/results/fuzz_matrix.md](benchmarks/results/fuzz_matrix.md).")


WRITERS = {"build-time": build_time, "int8-rule": int8_rule, "calibration": calibration, "hardening": hardening}
SECTION = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end generated: (?P=name) -->)", re.S)


def render(text: str) -> str:
    def sub(m):
        name = m.group("name")
        if name not in WRITERS:
            raise SystemExit(f"README: unknown generated section {name!r}; known: {', '.join(WRITERS)}")
        return m.group(1) + WRITERS[name]().rstrip("\n") + "\n" + m.group(4)
    return SECTION.sub(sub, text)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    text = README.read_text()
    new = render(text)
    if args.check:
        if new != text:
            raise SystemExit("README's generated sections are stale: run python benchmarks/readme_tables.py")
        print("README's generated sections match benchmarks/results/")
        return
    README.write_text(new)
    print(f"README: {len(SECTION.findall(new))} generated sections written")


if __name__ == "__main__":
    main()
