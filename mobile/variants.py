"""One artifact of a build (backend x precision x layout): export, verify against its reference, restore the
held-out photos, each stage through the build cache. `anyir build` runs them in its own process (`--jobs 1`)
or in a pool of worker processes, so that the converters' single-threaded graph work (ExecuTorch's lowering
alone is minutes of Python for the int8 graph) runs side by side, and the float artifacts while QAT trains.

A worker prints nothing: it returns its stage rows (and a failure as text), which the build prints as they
arrive and records in the manifest; its runtime chatter goes where the build's stderr goes (the log).
"""
from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from anyir_core.errors import AnyIRError


@dataclass
class Job:
    backend: str
    precision: str
    layout: str
    cfg: object               # mobile.bundle.BuildConfig
    root: str                 # the build's staging folder
    preset: str | None
    quant: dict | None        # the quantization state's manifest entry (int8)
    tile: tuple[int, int]
    overlap: int
    progress: bool = False    # progress bars (in the build's own process, on a terminal)

    @property
    def id(self) -> str:
        return f"{self.backend}-{self.precision}" + ("" if self.layout == "NCHW" else f"-{self.layout.lower()}")


_SOURCES: dict = {}  # a worker's ModelSource per (checkpoint, preset, state): traced references reused across jobs


def worker_init(threads: int) -> None:
    """A pool worker: Ctrl-C is the build's to handle (it terminates the pool), `threads` torch threads."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch
    torch.set_num_threads(threads)
    try:  # ExecuTorch's own threadpool (XNNPACK) would otherwise take every core: oversubscribed, its workers spin
        from executorch.extension.pybindings import portable_lib
        portable_lib._unsafe_reset_threadpool(threads)
    except (ImportError, AttributeError):
        pass


def run_in_worker(job: Job) -> dict:
    from conversion.source import ModelSource

    from .logs import third_party_progress
    key = (job.cfg.checkpoint, job.preset, str(Path(job.root) / "provenance" / "quant") if job.quant else None)
    if key not in _SOURCES:
        _SOURCES[key] = ModelSource(job.cfg.checkpoint, preset=job.preset, quant_state=key[2])
    with third_party_progress(False):
        return run(job, _SOURCES[key], stages=None)


def run(job: Job, src, stages=None) -> dict:
    """Export, verify and (where a runtime runs here) restore the photos. `stages`: the build's Stages when run
    in its process (lines printed as each stage ends), else the rows are collected and returned.
    Returns {id, art (record dict), folder, verify, photos, rows, failed (None or {stage, error}), problems}."""
    from conversion.base import Artifact, InputSpec, get_backend, write_record

    from . import bundle as B
    from .cache import BuildCache, stage_key
    from .measure import photo_quality

    cfg = job.cfg
    own = stages is None
    if own:
        stages = B.Stages(quiet=True)
    problems: list[str] = []
    cache = BuildCache(cfg.cache_dir, enabled=cfg.cache, say=stages.say if not own else problems.append)
    b, p, layout, vid, quant = job.backend, job.precision, job.layout, job.id, job.quant
    ck = {"checkpoint_sha256": src.checkpoint_sha256, "preset": src.preset}
    root = Path(job.root)
    out = {"id": vid, "backend": b, "precision": p, "layout": layout, "art": None, "folder": None, "verify": None,
           "photos": [], "failed": None}
    stage = "export"
    try:
        with stages(f"export {vid}") as row:
            backend = get_backend(b)
            spec = InputSpec(height=job.tile[0], width=job.tile[1], layout=layout)
            backend.check(p, layout)
            folder = root / B.PLATFORMS.get(b, ("android",))[0]
            folder.mkdir(exist_ok=True)
            file = folder / f"{src.preset}-{b}-{p}-{job.tile[0]}x{job.tile[1]}{'' if layout == 'NCHW' else '-' + layout.lower()}{backend.suffix}"
            mod = B._backend_module(b)
            key = stage_key("export", {**ck, "backend": b, "precision": p, "layout": layout, "tile": list(job.tile),
                                       "file": file.name, "quant": B._quant_key(quant) if p == "int8" else None},
                            (mod, "conversion.source"), B._tools(b))
            hit = cache.get("export", key)
            if hit:
                B._copy(hit.file(file.name), file)
                art, row["cached"] = Artifact.from_dict(hit.data["record"]), True
            else:
                art = backend.export(src, spec, p, file)
            B._own_record(art, cfg)
            write_record(art, folder)
            if not hit:
                cache.put("export", key, {"record": art.to_dict()}, {file.name: file})
        out.update(art=art.to_dict(), folder=str(folder))
        stage = "verify"
        with stages(f"verify {vid}") as row:
            key = stage_key("verify", B._run_input(art, cfg, quant), ("conversion.verify", mod), B._tools(b, data=True),
                            host=True)
            hit = cache.get("verify", key)
            if hit:
                v, row["cached"] = hit.data, True
            else:
                from conversion.verify import verify
                v = verify(file, checkpoint=cfg.checkpoint,
                           quant_state=str(root / "provenance" / "quant") if p == "int8" else None,
                           tasks=tuple(cfg.tasks), progress=job.progress, source=src)
                v = cache.put("verify", key, v)
            row["note"] = B._verdict_note(v)
        out["verify"] = v
        stage = "restore photos"
        runner = backend.load(art, folder)
        if not getattr(runner, "emulated", False):  # Core ML off Apple hardware: the interpreter checked the tiles;
            with stages(f"restore held-out photos {vid}") as row:  # photos are not worth minutes of numpy
                key = stage_key("photos", {**B._run_input(art, cfg, quant), "tile": list(job.tile), "overlap": job.overlap},
                                ("mobile.measure", mod), B._tools(b, data=True), host=True)
                hit = cache.get("photos", key)
                if hit:
                    out["photos"], row["cached"] = hit.data["rows"], True
                else:
                    out["photos"] = cache.put("photos", key, {"rows": photo_quality(runner.run_nchw, job.tile,
                                                                                    job.overlap, cfg.tasks)})["rows"]
    except AnyIRError as e:
        if B._INTERRUPTED:  # a backend wrapped the signal's KeyboardInterrupt in its own error: still abort
            raise KeyboardInterrupt from None
        out["failed"] = {"backend": b, "precision": p, "layout": layout, "stage": stage, "error": str(e)}
        out["user_error"] = True
    except Exception as e:  # a converter crash: report it, ship the others
        if B._INTERRUPTED:  # a signal landed inside a library that wrapped the KeyboardInterrupt: still abort
            raise KeyboardInterrupt from None
        out["failed"] = {"backend": b, "precision": p, "layout": layout, "stage": stage,
                         "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"}
        out["user_error"] = False
    out["rows"] = stages.rows if own else []
    out["problems"], out["said"] = list(cache.problems), problems
    return out


class Pool:
    """Up to `workers` spawned processes with `threads` torch threads each, fed from a queue: at most `limit`
    jobs run at once (the build lowers it while QAT trains in its own process, so that every process keeps a
    core), and a job can go to the front of the queue (the int8 ones once QAT is done). Results come back in
    any order; a finished job starts the next one at once, also while the build's process is busy training."""

    def __init__(self, workers: int, threads: int, fn=None):
        import multiprocessing
        import threading
        self.pool = multiprocessing.get_context("spawn").Pool(workers, initializer=worker_init, initargs=(threads,))
        self.workers, self.threads, self.limit = workers, threads, workers
        self.queue: list[Job] = []
        self.running: dict[str, object] = {}
        self.active: set[str] = set()  # jobs in a worker now (a job's callback, on the pool's result thread, ends it)
        self._lock = threading.RLock()
        self.fn = fn or run_in_worker  # what a worker runs on a job (a module-level function: it is pickled)

    @property
    def pending(self) -> bool:
        with self._lock:
            return bool(self.queue or self.running)

    def submit(self, job: Job, first: bool = False) -> None:
        with self._lock:
            self.queue.insert(0, job) if first else self.queue.append(job)
        self._pump()

    def set_limit(self, n: int) -> None:
        """At most `n` jobs at once from now on (at least 1, at most the workers); running ones are left be."""
        with self._lock:
            self.limit = max(1, min(n, self.workers))
        self._pump()

    def _ended(self, job_id: str) -> None:
        with self._lock:
            self.active.discard(job_id)
        self._pump()

    def _pump(self) -> None:
        with self._lock:
            while self.queue and len(self.active) < self.limit:
                job = self.queue.pop(0)
                self.active.add(job.id)
                end = (lambda _, i=job.id: self._ended(i))
                self.running[job.id] = self.pool.apply_async(self.fn, (job,), callback=end, error_callback=end)

    def done(self) -> list[dict]:
        """The results that have arrived since the last call (a worker's crash raises here)."""
        with self._lock:
            ready = [k for k, r in self.running.items() if r.ready()]
            got = [self.running.pop(k) for k in ready]
        self._pump()
        return [r.get() for r in got]

    def close(self) -> None:
        with self._lock:
            self.queue.clear()
        self.pool.terminate()
        self.pool.join()


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def plan_workers(jobs: int | None, variants: int) -> tuple[int, int]:
    """(worker processes, threads each): --jobs, else $ANYIR_BUILD_JOBS, else one per CPU up to 4; 1 means
    everything in the build's own process. Every process's threads together stay within the CPUs: spinning
    threadpools (XNNPACK's, OpenMP's) lose far more than they gain when they outnumber the cores."""
    cpus = cpu_count()
    if jobs is None:
        env = os.environ.get("ANYIR_BUILD_JOBS")
        try:
            jobs = int(env) if env else min(4, cpus)
        except ValueError:
            raise AnyIRError(f"ANYIR_BUILD_JOBS must be a whole number, not {env!r}") from None
    if jobs < 1:
        raise AnyIRError(f"--jobs must be at least 1, got {jobs}")
    workers = min(jobs, variants)
    return workers, max(1, cpus // workers)  # while QAT trains here, one worker fewer runs (Pool.set_limit)


def longest_first(jobs: list[Job]) -> list[Job]:
    """Submission order: what takes longest first (measured on the default build: the int8 .pte's lowering,
    then Core ML checked by the numpy interpreter, then the LiteRT int8 conversion), so two workers finish
    together."""
    weight = {("executorch", "int8"): 0, ("coreml", "int8"): 1, ("tflite", "int8"): 2, ("coreml", "fp16"): 3,
              ("executorch", "fp32"): 4}
    return sorted(jobs, key=lambda j: weight.get((j.backend, j.precision), 9))


def wait_all(pool: Pool, on_result, poll: float = 0.2) -> None:
    while pool.pending:
        for r in pool.done():
            on_result(r)
        time.sleep(poll)
    sys.stderr.flush()
