"""`anyir build`: checkpoint -> app-ready bundle, and `anyir bundle verify`.

A bundle is built in a hidden folder beside its destination and renamed into place only when every
file, the manifest and its schema check are written, so an interrupted build leaves nothing that looks
like a bundle. Layout (the demo apps read it through manifest.json, never by guessing names):

    dist/<name>-<version>/
      manifest.json            the single source of truth (schema: mobile/schema/manifest-1.schema.json)
      manifest.json.sha256     its sha256 (`sha256sum -c` format): the file table covers every other file
      README.md                model card
      report.md, report.html   numbers, plots, before/after images (report/*.png)
      android/                 what an Android app packs as assets: .tflite, .pte (+ their records)
      ios/                     what an iOS app adds to its target: .mlpackage, .pte (+ their records)
      testvectors/             tile plans, blend weights, pre/post-processed arrays for the app tests
      provenance/              the quantization state every int8 artifact came from, the checkpoint sidecar
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from anyir_core.errors import AnyIRError
from anyir_core.train import TrainingInterrupted

SCHEMA_ID = "anyir-mobile/manifest/1"
MANIFEST_SHA = "manifest.json.sha256"  # (mobile/bundle_check.py checks it)
SCHEMA_FILE = Path(__file__).with_name("schema") / "manifest-1.schema.json"
# where each runtime's artifacts go: the platforms whose apps run it
PLATFORMS = {"executorch": ("android", "ios"), "tflite": ("android",), "coreml": ("ios",)}
DEFAULT_LAYOUT = {"tflite": "NHWC"}
# what a default build makes per backend (others on request: --precisions, e.g. coreml fp32 / int8w)
DEFAULT_PRECISIONS = {"coreml": ("fp16", "int8")}  # Android bitmaps are interleaved; the others take NCHW
# a fixed order by what was fastest on one host, kept for readers of manifests without `ranking` (the demo
# apps mirror it); the build itself ranks by this build's host latency and by `rankings` below
PREFERENCE = (("executorch", "int8"), ("tflite", "int8"), ("executorch", "fp32"), ("tflite", "fp32"),
              ("tflite", "fp16"), ("coreml", "int8"), ("coreml", "fp16"), ("coreml", "fp32"))


_INTERRUPTED: list[int] = []  # signals received during this process's build (SIGTERM handler)
NOT_TIMED = ("not timed: Core ML runs only on Apple devices; on this host the numpy reference interpreter executed it "
             "(numerics, not speed). Time it on device with the iOS harness")


@dataclass
class BuildConfig:
    checkpoint: str = "default"
    preset: str | None = None
    backends: list[str] = field(default_factory=lambda: ["executorch", "tflite", "coreml"])
    # None: every precision each backend offers or has open; a list for all backends; or {backend: [...]}
    precisions: list[str] | dict | None = None
    size: list[int] = field(default_factory=lambda: [256, 256])
    overlap: int | None = None  # None: anyir_core.tiling.DEFAULT_OVERLAP
    layouts: dict = field(default_factory=dict)  # backend -> NCHW|NHWC|image (Core ML image-typed input)
    quant_state: str | None = None  # reuse a state from `anyir qat` instead of running QAT here
    # QuantConfig overrides. Calibration: 4 batches per task, chosen by what more batches buy
    # (benchmarks/bench_calibration.py; its table is in the README, "Calibration and QAT steps")
    qat: dict = field(default_factory=lambda: {"steps": 40, "calibration": 4})
    tasks: list[str] = field(default_factory=lambda: ["noise15", "noise25", "noise50", "rain", "haze"])
    name: str | None = None
    version: str | None = None
    out: str = "dist"
    force: bool = False
    strict: bool = False
    repeats: int = 10
    cache: bool = True  # False (--no-cache): every stage runs, the cache is neither read nor written
    cache_dir: str | None = None  # None: $ANYIR_CACHE_DIR, else ~/.cache/anyir-mobile/build (mobile/cache.py)
    jobs: int | None = None  # worker processes for the artifacts (mobile/variants.py); None: $ANYIR_BUILD_JOBS or per CPU

    def validate(self) -> None:
        from conversion.base import KNOWN_BACKENDS, PLANNED_BACKENDS
        if len(self.size) not in (1, 2):
            raise AnyIRError("size takes H or H W")
        h, w = (self.size * 2)[:2]
        if h % 8 or w % 8 or h < 16 or w < 16:
            raise AnyIRError(f"tile size must be multiples of 8 and at least 16, got {h}x{w}")
        for b in self.backends:
            if b not in KNOWN_BACKENDS and b not in PLANNED_BACKENDS:
                raise AnyIRError(f"unknown backend {b!r}; choose from {', '.join([*KNOWN_BACKENDS, *PLANNED_BACKENDS])}")
        chosen = self.precisions.values() if isinstance(self.precisions, dict) else [self.precisions or ()]
        for p in (p for ps in chosen for p in ps):
            if p not in ("fp32", "fp16", "int8", "int8w"):
                raise AnyIRError(f"unknown precision {p!r}; choose from fp32, fp16, int8, int8w (Core ML)")
        for b, lay in self.layouts.items():
            if lay not in ("NCHW", "NHWC", "image"):
                raise AnyIRError(f"layout for {b} must be NCHW, NHWC or image (Core ML), got {lay!r}")
        if self.repeats < 1:
            raise AnyIRError("repeats must be at least 1")

    @property
    def tile(self) -> tuple[int, int]:
        h, w = (list(self.size) * 2)[:2]
        return int(h), int(w)


def build_config_from(opts: dict) -> BuildConfig:
    from anyir_core.train import config_from
    return config_from(BuildConfig, opts, "build")


# --- small pieces -------------------------------------------------------------------------------

class Stages:
    """Wall time per stage and whether the cache supplied it. What is printed fits where it goes: nothing
    with --quiet; on a terminal a line when a stage starts (its progress bars follow) and one when it ends;
    in a log (stderr not a terminal) one line per stage, when it ends."""

    def __init__(self, quiet: bool, tty: bool = False):
        self.rows: list[dict] = []
        self.quiet, self.tty = quiet, tty
        self.parallel: dict | None = None  # {workers, threads_per_worker} when stages ran in worker processes
        self.t0 = time.perf_counter()

    def say(self, line: str) -> None:
        if not self.quiet:
            print(line, file=sys.stderr, flush=True)

    @contextmanager
    def __call__(self, name: str, announce: bool = True):
        """Yields the stage's row: set row["cached"] = True when the cache supplied it, row["note"] for the log."""
        t = time.perf_counter()
        row = {"stage": name, "seconds": 0.0, "cached": False}
        if announce and self.tty:
            self.say(f"[{t - self.t0:6.0f} s] {name} ...")
        ok = False
        try:
            yield row
            ok = True
        finally:
            row["seconds"] = round(time.perf_counter() - t, 2)
            self.rows.append(row)
            if announce:
                how = " (from cache)" if row["cached"] else "" if ok else " (failed)"
                note = f"; {row['note']}" if row.get("note") else ""
                self.say(f"[{time.perf_counter() - self.t0:6.0f} s] {name}: {row['seconds']:.1f} s{how}{note}")

    def add(self, row: dict) -> None:
        """A stage that ran elsewhere (a worker process): recorded, and its line printed now."""
        self.rows.append(row)
        how = " (from cache)" if row["cached"] else ""
        note = f"; {row['note']}" if row.get("note") else ""
        self.say(f"[{time.perf_counter() - self.t0:6.0f} s] {row['stage']}: {row['seconds']:.1f} s{how}{note}")

    @property
    def total(self) -> float:
        return round(time.perf_counter() - self.t0, 2)


@contextmanager
def _terminate_as_interrupt():
    """SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the partial folder is removed."""
    def handler(signum, frame):
        _INTERRUPTED.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")
    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _unlisted(root: Path, p: Path) -> bool:
    """The files the manifest's table leaves out: manifest.json itself and the checksum beside it."""
    return p.name == "manifest.json" or _rel(p, root) == MANIFEST_SHA


def _bundle_files(root: Path) -> list[Path]:
    """Every file and link under `root`, sorted, without following a link (os.walk does not)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        out += [d / n for n in filenames] + [d / n for n in dirnames if (d / n).is_symlink()]
    return sorted(out)


def _file_table(root: Path) -> dict:
    from conversion.base import file_sha256
    table = {}
    for p in _bundle_files(root):
        if p.is_file() and not p.is_symlink() and not _unlisted(root, p):
            table[_rel(p, root)] = {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
    return table


def load_schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


def schema_errors(doc: dict, schema: dict | None = None) -> list[str]:
    """One line per way `doc` breaks `schema` (default: the manifest's), in document order."""
    import jsonschema
    validator = jsonschema.Draft202012Validator(schema or load_schema())
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message[:160]}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))]


def host_info() -> dict:
    import torch
    return {"machine": platform.machine(), "system": f"{platform.system()} {platform.release()}",
            "cpus": os.cpu_count() or 1, "threads": torch.get_num_threads()}


# --- the build ----------------------------------------------------------------------------------

def plan_variants(cfg: BuildConfig) -> list[tuple[str, str, str]]:
    """(backend, precision, layout) to attempt, in order."""
    from conversion.base import KNOWN_BACKENDS, PLANNED_BACKENDS, get_backend_class
    out = []
    for b in cfg.backends:
        layout = cfg.layouts.get(b, DEFAULT_LAYOUT.get(b, "NCHW"))
        if isinstance(cfg.precisions, dict):
            precisions = list(cfg.precisions.get(b, []))
        elif cfg.precisions is not None:
            precisions = list(cfg.precisions)
        elif b in PLANNED_BACKENDS or b not in KNOWN_BACKENDS:
            precisions = ["fp32", "int8"]
        else:
            cls = get_backend_class(b)
            precisions = [p for p in DEFAULT_PRECISIONS.get(b, ("fp32", "fp16", "int8")) if p in cls.precisions or p in cls.not_yet]
        out += [(b, p, layout) for p in precisions]
    return out


def build(cfg: BuildConfig, quiet: bool = False, command: str = "anyir build", verbose: bool = False,
          tty: bool | None = None) -> Path:
    """Run the whole build; return the bundle folder. Raises AnyIRError on a user error.

    quiet: nothing on stderr but errors; verbose: each verification's table too; tty: progress bars and
    stage start lines (default: whether stderr is a terminal; never with quiet)."""
    import anyir_core
    cfg.validate()
    from anyir_core.inspect import count_macs, count_parameters
    from anyir_core.tiling import DEFAULT_OVERLAP
    from conversion.base import file_sha256, tool_versions
    from conversion.source import ModelSource

    from .cache import BuildCache
    from .logs import third_party_progress

    overlap = DEFAULT_OVERLAP if cfg.overlap is None else cfg.overlap
    tile = cfg.tile
    if not 0 <= overlap < min(tile) // 2:
        raise AnyIRError(f"overlap {overlap} must be in [0, {min(tile) // 2}) for a {tile[0]}x{tile[1]} tile")
    bars = (sys.stderr.isatty() if tty is None else tty) and not quiet
    stages = Stages(quiet, tty=bars)
    src = ModelSource(cfg.checkpoint, preset=cfg.preset)
    with stages("check the checkpoint", announce=False):  # a user error here is one line, nothing else
        src.fp32_model()  # a bad checkpoint fails here, before anything is written
        eager = src.eager_model().eval()
    name = cfg.name or src.preset
    version = cfg.version or anyir_core.__version__
    dest = Path(cfg.out) / f"{name}-{version}"
    if dest.exists() and not cfg.force:
        raise _exists_error(dest)
    variants = plan_variants(cfg)
    cache = BuildCache(cfg.cache_dir, enabled=cfg.cache, say=stages.say)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    _sweep_dead_partials(Path(cfg.out))
    tmp = Path(cfg.out) / f".{name}-{version}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with _terminate_as_interrupt(), third_party_progress(bars):
            manifest = _build_into(tmp, cfg, src, eager, variants, tile, overlap, stages, cache, verbose)
            manifest.update(name=name, version=version,
                            builder={"tool": f"anyir-mobile {anyir_core.__version__}",
                                     "tools": tool_versions("torch", "executorch", "litert-torch", "ai-edge-litert",
                                                            "coremltools", "torchao", "numpy"),
                                     "host": host_info(), "command": command})
            manifest["model"].update(parameters=count_parameters(eager.model), macs_per_tile=count_macs(eager.model, tile),
                                     checkpoint={"name": str(cfg.checkpoint), "sha256": file_sha256(src.checkpoint_path),
                                                 "bytes": src.checkpoint_path.stat().st_size})
            manifest["build"] = _build_record(stages, cache)
            with stages("report and model card"):
                from .report import write_model_card, write_report
                write_report(tmp, manifest)
                write_model_card(tmp, manifest, src)
            manifest["build"] = _build_record(stages, cache)
            _write_manifest(tmp, manifest)
            errors = schema_errors(json.loads((tmp / "manifest.json").read_text()))
            if errors:
                raise AnyIRError(f"internal: the manifest does not match its schema: {errors[0]}")
            _move_into_place(tmp, dest, cfg.force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _exists_error(dest: Path) -> AnyIRError:
    return AnyIRError(f"{dest} exists; pass --force to replace it, or --version/--name to build beside it")


def _move_into_place(tmp: Path, dest: Path, force: bool) -> None:
    """Rename the finished bundle to `dest`. Checked again here, not only at the start: another build into the
    same dist/ may have finished meanwhile, and its bundle is replaced only with --force."""
    if dest.exists() and not force:
        raise _exists_error(dest)
    if dest.exists():
        shutil.rmtree(dest)
    try:
        tmp.rename(dest)  # refused (not empty) when another build's bundle landed since the check
    except OSError as e:
        if dest.exists():
            raise _exists_error(dest) from None
        raise AnyIRError(f"{dest}: could not move the finished bundle into place ({e.strerror or e})") from None


PARTIAL = re.compile(r"^\..+\.partial-(\d+)(-qat)?$")  # build()'s hidden work folders (and _quant_state's)


def _sweep_dead_partials(out: Path) -> None:
    """Remove the hidden work folders in `out` of builds that are no longer running (SIGKILL, a power cut: no
    `finally` ran). A folder whose pid is alive, or whose owner this user may not signal, is left alone."""
    for d in out.iterdir():
        m = PARTIAL.match(d.name)
        if not m or not d.is_dir() or d.is_symlink() or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (PermissionError, OverflowError, OSError):
            pass  # alive under another user, or not a pid this host can check: not ours to remove


def _build_record(stages: Stages, cache) -> dict:
    return {"stages": stages.rows, "seconds": stages.total, "workers": stages.parallel,
            "cache": {"enabled": cache.enabled, "hits": sum(r["cached"] for r in stages.rows),
                      "problems": list(cache.problems)}}


def _write_manifest(root: Path, manifest: dict) -> None:
    manifest["files"] = _file_table(root)
    order = ["schema", "name", "version", "created", "builder", "model", "input", "quantization", "default_artifact",
             "ranking", "artifacts", "failed", "host_latency", "profiles", "build", "files"]
    text = (json.dumps({k: manifest[k] for k in order if k in manifest}, indent=2) + "\n").encode()
    _atomic_bytes(root / "manifest.json", text)
    # last: a manifest changed after it no longer matches (a flip that keeps it valid JSON and schema-valid)
    _atomic_bytes(root / MANIFEST_SHA, f"{hashlib.sha256(text).hexdigest()}  manifest.json\n".encode())


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --- the cache keys: what each stage reads (mobile/cache.py adds the project's version, the hash of the
# source files named here and what they import, and the versions of the packages named here) ---------

COMMON_TOOLS = ("torch", "torchao", "numpy")
DATA_TOOLS = ("pillow", "scikit-image", "scikit-learn", "matplotlib", "scipy")  # the built-in photos and degradations
BACKEND_TOOLS = {"executorch": ("executorch",), "tflite": ("litert-torch", "ai-edge-litert"), "coreml": ("coremltools",)}


def _tools(backend: str, data: bool = False) -> tuple[str, ...]:
    return COMMON_TOOLS + BACKEND_TOOLS.get(backend, ()) + (DATA_TOOLS if data else ())


def _backend_module(backend: str) -> str:
    from conversion.base import KNOWN_BACKENDS
    return KNOWN_BACKENDS[backend]


def _run_input(art, cfg: BuildConfig, quant: dict | None) -> dict:
    """What a stage that runs an artifact depends on besides its code: the file's bytes, how it is fed, the
    reference it is compared with."""
    return {"artifact_sha256": art.sha256, "backend": art.backend, "precision": art.precision,
            "input": art.to_dict()["input"], "checkpoint_sha256": art.checkpoint_sha256,
            "quant": _quant_key(quant) if art.precision == "int8" else None, "tasks": list(cfg.tasks)}


def _quant_key(quant: dict | None) -> dict | None:
    """The part of a quantization state an int8 export reads: the learned state and the scheme it was
    trained for (quant.json's paths and log do not enter: a state reused from the cache may name the
    checkpoint by another path)."""
    if not quant:
        return None
    return {"state_sha256": quant["sha256"], "scheme": quant["scheme"],
            "float_levels": quant.get("recipe", {}).get("float_levels", 0)}


def _own_record(art, cfg: BuildConfig) -> None:
    """The record as this bundle has it: the checkpoint as named in this build, an int8 artifact's state
    relative to the artifact's folder (so it survives being moved), no state for the others."""
    art.source = {**art.source, "checkpoint": str(cfg.checkpoint),
                  "quant_state": "../provenance/quant" if art.precision == "int8" else None}


def _verdict_note(v: dict) -> str:
    return (f"{'pass' if v['passed'] else 'BELOW THRESHOLD'}: {v['numeric_psnr_min']:.1f} dB vs its reference "
            f"(floor {v['threshold']:.0f})")


def _build_into(root: Path, cfg: BuildConfig, src, eager, variants, tile, overlap, stages, cache,
                verbose: bool = False) -> dict:
    from conversion.base import Artifact, get_backend

    from . import variants as V
    from .cache import stage_key
    from .measure import host_latency

    failed: list[dict] = []
    quant = None
    quiet, bars = stages.quiet, stages.tty
    workers, threads = V.plan_workers(cfg.jobs, len(variants))
    jobs = [V.Job(b, p, lay, cfg, str(root), src.preset, None, tile, overlap, progress=bars and workers == 1)
            for b, p, lay in variants]
    results: dict[str, dict] = {}

    def take(r: dict) -> None:  # a variant's result: its stage lines (from a worker), its failure
        for line in r.get("said", []):
            stages.say(line)
        for row in r["rows"]:
            stages.add(row)
        cache.problems += [m for m in r.get("problems", []) if m not in cache.problems]
        results[r["id"]] = r
        f = r["failed"]
        if f:
            if cfg.strict:
                raise AnyIRError(f"{r['id']}: {f['stage']}: {f['error']} (--strict)")
            if not quiet:
                print(f"  {r['id']}: {f['stage']} failed: {f['error']}", file=sys.stderr)
        elif verbose:
            from conversion.verify import format_verdict
            print(format_verdict(r["verify"]), file=sys.stderr)

    pool = V.Pool(workers, threads) if workers > 1 else None
    stages.parallel = {"workers": workers, "threads_per_worker": threads} if pool else None
    import torch
    own_threads = torch.get_num_threads()
    needs_int8 = any(p == "int8" for _, p, _ in variants)
    if pool and needs_int8:  # QAT trains here on the cores of one worker, the others export the float artifacts
        pool.set_limit(workers - 1)
        torch.set_num_threads(max(1, V.cpu_count() - (workers - 1) * threads))
    try:
        floats = [j for j in jobs if j.precision != "int8"]
        if pool:  # the float artifacts need no quantization state: they run while QAT trains
            for j in V.longest_first(floats):
                pool.submit(j)
        if needs_int8:
            with stages("quantize (QAT)" if not cfg.quant_state else "quantization state") as row:
                try:
                    quant, row["cached"] = _quant_state(root, cfg, src, not bars, cache)
                except TrainingInterrupted:  # Ctrl-C / SIGTERM during QAT: abort the build, not just int8
                    raise KeyboardInterrupt from None
                except AnyIRError as e:
                    if cfg.strict:
                        raise
                    failed += [{"backend": b, "precision": p, "layout": lay, "stage": "quantize", "error": str(e)}
                               for b, p, lay in variants if p == "int8"]
                    variants = [v for v in variants if v[1] != "int8"]
        int8 = [j for j in jobs if j.precision == "int8" and any(v[:2] == (j.backend, "int8") for v in variants)]
        for j in int8:
            j.quant = quant
        todo = V.longest_first(int8) if pool else [j for j in jobs if j.precision != "int8" or j in int8]
        if pool:  # the int8 artifacts (the longest jobs: the critical path) go before the floats still queued
            for j in reversed(todo):
                pool.submit(j, first=True)
            pool.set_limit(workers)
            V.wait_all(pool, take)
        else:
            for j in todo:
                take(V.run(j, src, stages))
    finally:
        if pool:
            pool.close()
            torch.set_num_threads(own_threads)  # host latency is timed with the build's threads
    built = []  # in the planned order, whichever finished first
    for b, p, lay in variants:
        r = results.get(next(j.id for j in jobs if (j.backend, j.precision, j.layout) == (b, p, lay)))
        if r is None:
            continue
        if r["failed"]:
            failed.append(r["failed"])
            continue
        art = Artifact.from_dict(r["art"])
        folder = Path(r["folder"])
        built.append({"id": r["id"], "art": art, "folder": folder, "verify": r["verify"], "photos": r["photos"],
                      "runner": get_backend(art.backend).load(art, folder)})

    with stages("host latency, side by side") as row:
        lat = host_latency(eager, [(x["id"], x["runner"]) for x in built if not getattr(x["runner"], "emulated", False)],
                           tile, cfg.repeats)
        lat["note"] = "measured in this build on this host, never taken from the build cache"
        row["note"] = "measured in this build (never cached)"

    entries = []
    for x in built:
        art, v = x["art"], x["verify"]
        paths, records = {}, {}
        for plat in PLATFORMS.get(art.backend, ("android",)):
            d = root / plat
            d.mkdir(exist_ok=True)
            if d != x["folder"]:
                _copy(x["folder"] / art.file, d / art.file)
                shutil.copy2(x["folder"] / f"{art.file}.json", d / f"{art.file}.json")
            paths[plat] = _rel(d / art.file, root)
            records[plat] = _rel(d / f"{art.file}.json", root)
        entries.append({
            "id": x["id"], "backend": art.backend, "precision": art.precision, "paths": paths, "record": records,
            "bytes": art.bytes, "sha256": art.sha256, "input": art.to_dict()["input"], "quant_scheme": art.quant_scheme,
            "runtime": art.runtime, "tools": art.tools,
            "numerics": {"reference": v["reference"], "psnr_min": round(v["numeric_psnr_min"], 2),
                         "psnr_mean": round(v["numeric_psnr_mean"], 2), "max_abs": v["max_abs"],
                         "threshold": v["threshold"], "passed": v["passed"], "tiles": v["images"]}
            | ({"task_drop_budget": v["task_drop_budget"], "worst_task_drop": round(v["worst_task_drop"], 3),
                "failed_on": v["failed_on"]} if "task_drop_budget" in v else {}),
            "quality": {"tiles": {t: {k: round(val, 3) for k, val in d.items()} for t, d in v["per_task"].items()},
                        "photos": x["photos"]},
            "latency": lat["artifacts"].get(x["id"], {"host_ms_median": None, "speedup_vs_eager": None, "note": NOT_TIMED})
            | {"eager_fp32_ms_median": lat["eager_ms_median"], "threads": lat["threads"], "repeats": lat["repeats"]},
            "status": "ok" if v["passed"] else "below-threshold",
            "details": art.details,
        })
    with stages("test vectors") as row:  # every artifact's outputs on this host: one entry for the set
        vec = root / "testvectors"
        backends = sorted({x["art"].backend for x in built})
        key = stage_key("vectors", {"artifacts": [{"id": x["id"], "artifact_sha256": x["art"].sha256,
                                                   "input": x["art"].to_dict()["input"], "threshold": x["verify"]["threshold"]}
                                                  for x in built], "tile": list(tile), "overlap": overlap},
                        ("mobile.vectors", *(_backend_module(b) for b in backends)),
                        tuple(dict.fromkeys(t for b in backends for t in _tools(b, data=True))), host=True)
        hit = cache.get("vectors", key)
        if hit:
            _copy(hit.file(vec.name), vec)
            row["cached"] = True
        else:
            from .vectors import write_vectors
            write_vectors(vec, {x["id"]: x["runner"] for x in built}, tile, overlap,
                          tolerances={x["id"]: x["verify"]["threshold"] for x in built})
            cache.put("vectors", key, {}, {vec.name: vec})
    ranking = rankings(entries)
    default = host_default(entries, ranking)
    if entries:
        with stages("before/after images") as row:
            x = next(x for x in built if x["id"] == default)
            out = root / "report" / "before_after.jpg"
            key = stage_key("before_after", {**_run_input(x["art"], cfg, quant), "tile": list(tile), "overlap": overlap},
                            ("mobile.report", _backend_module(x["art"].backend)), _tools(x["art"].backend, data=True),
                            host=True)
            hit = cache.get("before_after", key)
            if hit:
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(hit.file(out.name), out)
                row["cached"] = True
            else:
                from .report import before_after
                before_after(out, x["runner"].run_nchw, tile, overlap, cfg.tasks)
                cache.put("before_after", key, {}, {out.name: out})
    if not entries:
        raise AnyIRError("no artifact was built: " + "; ".join(f"{f['backend']} {f['precision']}: {f['error']}" for f in failed))
    from conversion.quantize import checkpoint_sidecar
    side = checkpoint_sidecar(src.checkpoint)
    (root / "provenance").mkdir(exist_ok=True)
    if side:
        (root / "provenance" / "checkpoint.json").write_text(json.dumps(side, indent=2) + "\n")
    return {
        "schema": SCHEMA_ID,
        "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "model": {"architecture": "AnyIR", "preset": src.preset, "training": _training_summary(side),
                  "tasks": list(side.get("recipe", {}).get("tasks") or cfg.tasks)},
        "input": {"tile": list(tile), "overlap": overlap, "value_range": [0.0, 1.0], "color_order": "RGB",
                  "dtype": "float32", "padding": "reflect at bottom/right up to the tile size (mirror, edge pixel not repeated)",
                  "blend": "weights w(y)*w(x), w(t) = sin^2(pi/2*(t+0.5)/overlap) over the first/last `overlap` pixels, "
                           "1 inside; sum of weighted outputs / sum of weights",
                  "plan": "per axis n = 1 + ceil((L - T) / (T - overlap)) tiles, origin_i = floor(i * (L - T) / (n - 1))"},
        "quantization": quant,
        "default_artifact": default,
        "ranking": ranking,
        "artifacts": entries,
        "failed": failed,
        "host_latency": lat,
    }


# --- which artifact first, per platform ---------------------------------------------------------

PRECISION_RANK = ("int8", "int8w", "fp16", "fp32")  # phones: int8 kernels (and NPUs) first, then half, then float
IOS_RUNTIME_RANK = ("coreml", "executorch")  # Core ML can schedule the Neural Engine; the .pte runs XNNPACK on CPU


def rankings(entries: list[dict]) -> dict:
    """Passing artifacts, best first, per platform. host: by the host latency this build measured (Core ML
    is not timed here, so it is never in it). android / ios: by a rule that takes nothing from the host's
    timing (a build host's CPU says little about a phone's): precision (PRECISION_RANK), then runtime on
    iOS (IOS_RUNTIME_RANK), then the smaller file, then the id. Device profiles (`anyir profile --target
    android|ios`) are what measures a phone."""
    ok = [e for e in entries if e["status"] == "ok"]

    def rank(seq, e):
        return seq.index(e) if e in seq else len(seq)

    def phone(plat: str, runtimes: tuple = ()) -> list[str]:
        mine = [e for e in ok if plat in e["paths"]]
        return [e["id"] for e in sorted(mine, key=lambda e: (rank(PRECISION_RANK, e["precision"]),
                                                             rank(runtimes, e["backend"]), e["bytes"], e["id"]))]
    timed = [e for e in ok if e["latency"].get("host_ms_median") is not None]
    return {"android": phone("android"), "ios": phone("ios", IOS_RUNTIME_RANK),
            "host": [e["id"] for e in sorted(timed, key=lambda e: (e["latency"]["host_ms_median"], e["id"]))]}


def host_default(entries: list[dict], ranking: dict) -> str | None:
    """`anyir restore`'s artifact when none is named: the fastest passing one measured in this build; when no
    timed artifact passed, the fastest timed one (its status says below-threshold); when nothing was timed
    (only Core ML built), the first."""
    if ranking["host"]:
        return ranking["host"][0]
    timed = [e for e in entries if e["latency"].get("host_ms_median") is not None]
    if timed:
        return min(timed, key=lambda e: (e["latency"]["host_ms_median"], e["id"]))["id"]
    return entries[0]["id"] if entries else None


def _copy(a: Path, b: Path) -> None:
    if a.is_dir():
        shutil.copytree(a, b)
    else:
        shutil.copy2(a, b)


def _training_summary(side: dict) -> dict:
    keep = ("steps", "patch", "batch", "lr", "tasks", "data", "seed", "darken", "color")
    recipe = side.get("recipe", {})
    return {"recipe": {k: recipe[k] for k in keep if k in recipe}, "step": side.get("step"),
            **({"log": side["training"]} if "training" in side else {}),
            **({"metrics": side["metrics"]} if "metrics" in side else {})}


def _quant_state(root: Path, cfg: BuildConfig, src, quiet: bool, cache=None) -> tuple[dict, bool]:
    """The quantization state every int8 artifact is converted from, in provenance/quant: copied from
    --quant-state, from the cache, or made by QAT here. Returns (its manifest entry, whether the cache gave it)."""
    from dataclasses import asdict

    from conversion.quantize import STATE_FILE, checkpoint_sidecar, quant_config_from, quantize

    from .cache import data_fingerprint, stage_key
    files = ("quant.json", STATE_FILE)
    dest = root / "provenance" / "quant"
    dest.parent.mkdir(parents=True, exist_ok=True)
    cached = False
    if cfg.quant_state:
        qs = Path(cfg.quant_state)
        if not (qs / STATE_FILE).is_file():
            raise AnyIRError(f"{qs}: not a quantization state folder (no {STATE_FILE}); make one with `anyir qat`")
        dest.mkdir()
        for f in files:
            shutil.copy2(qs / f, dest / f)
    else:
        opts = dict(cfg.qat)
        tasks = checkpoint_sidecar(src.checkpoint).get("recipe", {}).get("tasks")
        if "tasks" not in opts and tasks:
            opts["tasks"] = tasks
        qcfg = quant_config_from(opts)
        key = stage_key("qat", {"checkpoint_sha256": src.checkpoint_sha256, "preset": src.preset, "recipe": asdict(qcfg),
                                "data": data_fingerprint(qcfg.data)},
                        ("conversion.quantize",), COMMON_TOOLS + DATA_TOOLS)
        hit = cache.get("qat", key) if cache is not None else None
        if hit:
            dest.mkdir()
            for f in files:
                shutil.copy2(hit.file(f), dest / f)
            cached = True
        else:
            work = root.parent / f"{root.name}-qat"
            shutil.rmtree(work, ignore_errors=True)
            try:
                quantize(cfg.checkpoint, work, qcfg, preset=src.preset, quiet=quiet)
                dest.mkdir()
                for f in files:
                    shutil.copy2(work / f, dest / f)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            if cache is not None:
                cache.put("qat", key, {}, {f: dest / f for f in files})
    src.quant_state = str(dest)
    info = src.quant_info()  # refuses a state from another checkpoint
    return {"scheme": info["scheme"], "mode": info["mode"], "steps": int(info.get("steps", 0)),
            "sha256": info["sha256"], "recipe": info.get("recipe", {}),
            "files": [f"provenance/quant/{f}" for f in files]}, cached


# --- bundle verify ------------------------------------------------------------------------------

def verify_bundle(folder: str | Path) -> dict:
    """Schema, checksums (manifest.json's own too), missing and extra files, symbolic links (a bundle holds none:
    nothing here is followed), paths out of the bundle, artifact records, ids. Returns {"ok": bool, "problems":
    [...], "manifest": ...}."""
    from conversion.base import file_sha256, read_record

    from .bundle_check import _path_problem, escapes, manifest_sha_problem
    root = Path(folder)
    if not root.is_dir():
        raise AnyIRError(f"{root}: not a bundle folder")
    mpath = root / "manifest.json"
    if not mpath.is_file():
        raise AnyIRError(f"{root}: no manifest.json (not a bundle, or an unfinished one)")
    text = mpath.read_bytes()
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as e:
        raise AnyIRError(f"{mpath}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except ValueError as e:  # not UTF-8
        raise AnyIRError(f"{mpath}: not valid JSON ({str(e)[:80]})") from None
    if not isinstance(manifest, dict):
        raise AnyIRError(f"{mpath}: a JSON {type(manifest).__name__}, not a manifest; the bundle is damaged")
    problems = [p for p in [manifest_sha_problem(root, text)] if p]
    problems += [f"manifest.json: {e}" for e in schema_errors(manifest)]
    problems += escapes(root, manifest)  # paths out of the bundle or through a link, and every link: never followed

    def unsafe(rel) -> bool:
        return not isinstance(rel, str) or _path_problem(root, rel) is not None

    files = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    for rel, want in sorted(files.items()):
        p = root / rel
        if unsafe(rel):
            continue  # named above
        if not p.is_file():
            problems.append(f"{rel}: missing")
        elif not isinstance(want, dict) or p.stat().st_size != want.get("bytes") or file_sha256(p) != want.get("sha256"):
            problems.append(f"{rel}: changed (size or sha256 differs from the manifest)")
    links = []
    for p in _bundle_files(root):
        if p.is_symlink():
            links.append(_rel(p, root))
        elif not _unlisted(root, p) and _rel(p, root) not in files:
            problems.append(f"{_rel(p, root)}: not listed in the manifest")
    arts = [a for a in manifest.get("artifacts", []) if isinstance(a, dict)] \
        if isinstance(manifest.get("artifacts"), list) else []
    for a in arts:
        for rel in (a.get("paths") if isinstance(a.get("paths"), dict) else {}).values():
            if unsafe(rel) or unsafe(f"{rel}.json") or any(x.startswith(f"{rel}/") for x in links):
                continue  # named above
            p = root / rel
            if p.is_dir():  # a package (.mlpackage): its files are in the table; the artifact hash covers them all
                if any(_rel(f, root) not in files for f in p.rglob("*") if f.is_file()):
                    continue  # named above, file by file
                if file_sha256(p) != a.get("sha256"):
                    problems.append(f"{rel}: artifact {a.get('id')} sha256 differs from its package's files")
            elif rel not in files:
                problems.append(f"{rel}: artifact {a.get('id')} is not in the file table")
            elif files[rel].get("sha256") != a.get("sha256"):
                problems.append(f"{rel}: artifact {a.get('id')} sha256 differs from its file-table entry")
            if p.exists():  # what a runtime loads is what its record names: the record must describe this file
                try:
                    read_record(p)
                except AnyIRError as e:
                    problems.append(f"{rel}: artifact {a.get('id')}: {str(e).replace(str(root) + os.sep, '')}")
    ids = [a.get("id") for a in arts if isinstance(a.get("id"), str)]
    problems += [f"artifact id {i!r} is listed more than once" for i in sorted({i for i in ids if ids.count(i) > 1}, key=str)]
    default = manifest.get("default_artifact")
    if default is not None and default not in ids:
        problems.append(f"default_artifact {default!r} names no artifact of this bundle")
    return {"ok": not problems, "problems": problems, "manifest": manifest}


def find_artifact(manifest: dict, backend: str | None, precision: str | None) -> dict:
    arts = manifest.get("artifacts", [])
    if not backend and not precision:
        chosen = [a for a in arts if a["id"] == manifest.get("default_artifact")]
    else:
        chosen = [a for a in arts if (not backend or a["backend"] == backend) and (not precision or a["precision"] == precision)]
    if not chosen:
        have = ", ".join(f"{a['backend']} {a['precision']}" for a in arts) or "none"
        raise AnyIRError(f"the bundle has no {backend or ''} {precision or ''} artifact (it has: {have})".replace("  ", " "))
    return chosen[0]
