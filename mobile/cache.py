"""The build cache: each stage of `anyir build` (QAT, every artifact's export, verification and photo
quality, the before/after images) is stored under a key of everything it reads, so a rebuild redoes only
what a change touches.

A key is the sha256 of: the stage, its settings (checkpoint sha256, tile, precision, quantization recipe,
...), the versions of the tools it runs, the project's version, a hash of the project's own source files
that the stage imports (followed through `import` statements, lazy ones included), and, for stages that
run an artifact, this CPU (XNNPACK picks other int8 kernels on other CPUs; FACTS.md "Hosts differ").
Latency is never cached: it is a measurement of this run.

An entry is a folder `<root>/<kind>/<key>/` holding `entry.json` (the stage's JSON result, the sha256 of
that result and of every stored file) and `files/`. It is written into `<root>/.tmp/` and renamed into
place when complete, so an interrupted build leaves either the whole entry or none of it; a temp folder
whose process is gone is removed by the next build. Every hit is checked against its sha256s: a truncated
file, a bad JSON or a changed byte is reported in one line, dropped and rebuilt.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import platform
import shutil
import sys
import uuid
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

FORMAT = 1  # bump when an entry's layout or a stage's stored result changes shape
ENV = "ANYIR_CACHE_DIR"
DEFAULT_DIR = "~/.cache/anyir-mobile/build"
ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("anyir_core", "conversion", "mobile")
ENTRY = "entry.json"


def default_dir() -> Path:
    return Path(os.environ.get(ENV) or DEFAULT_DIR).expanduser()


# --- what a key is made of ----------------------------------------------------------------------

def _module_file(name: str) -> Path | None:
    if name.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _imported_modules(path: Path, module: str) -> set[str]:
    """Project modules a file imports anywhere (function-level imports included: the project imports its
    heavy pieces lazily)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            out.add(name)
            out.update(f"{name}.{a.name}" for a in node.names)  # `from . import x` may name a module
    return {m for m in out if _module_file(m)}


@lru_cache(maxsize=None)
def source_files(*modules: str) -> tuple[Path, ...]:
    """The project's source files that `modules` run: themselves, their packages' __init__, and everything
    they import from the project, transitively."""
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        f = _module_file(m)
        if f is None:
            raise ValueError(f"internal: {m} is not a module of this project")
        seen[m] = f
        parts = m.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b runs a/__init__.py
        todo += sorted(_imported_modules(f, m) - set(seen))
    return tuple(sorted(set(seen.values())))


@lru_cache(maxsize=None)
def source_hash(*modules: str) -> str:
    h = hashlib.sha256()
    for f in source_files(*modules):
        h.update(f.relative_to(ROOT).as_posix().encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    return h.hexdigest()


@lru_cache(maxsize=None)
def versions(*packages: str) -> dict:
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@lru_cache(maxsize=None)
def project_version() -> dict:
    import anyir_core
    return {"anyir_core": anyir_core.__version__, **{k: v for k, v in versions("anyir-mobile").items() if k != "python"}}


@lru_cache(maxsize=None)
def host_cpu() -> dict:
    """What decides which kernels a runtime picks here: the architecture, the CPU model and its vector ISA."""
    model, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    isa = sorted(f for f in flags if f.startswith(("avx", "amx", "sse4", "fma", "f16c", "asimd", "sve", "i8mm", "bf16")))
    return {"machine": platform.machine(), "model": model, "isa": isa}


def stage_key(kind: str, settings: dict, modules: tuple[str, ...], packages: tuple[str, ...],
              host: bool = False) -> str:
    """The key of one stage: everything its output depends on."""
    parts = {"format": FORMAT, "kind": kind, "settings": settings, "code": source_hash(*modules),
             "tools": versions(*packages), "project": project_version(), "host": host_cpu() if host else None}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def data_fingerprint(specs: list[str]) -> list:
    """Training-data specs (`builtin:train`, `folder:PATH`, `paired:A,B`, `benchmark:TASK=ROOT`) with, for each
    folder named, its files' names, sizes and modification times: editing a photo there changes the key."""
    out = []
    for spec in specs:
        kind, _, arg = spec.partition(":")
        roots = [] if kind == "builtin" else arg.partition("=")[2:] if kind == "benchmark" else arg.split(",")
        tree = hashlib.sha256()
        for r in roots:
            for dirpath, dirs, names in os.walk(r):
                dirs.sort()
                for n in sorted(names):
                    st = os.stat(os.path.join(dirpath, n))
                    tree.update(f"{os.path.relpath(os.path.join(dirpath, n), r)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        out.append([spec, tree.hexdigest() if roots else None])
    return out


def _plain(x):
    """JSON for numpy scalars and arrays in a stage's result."""
    return x.tolist() if hasattr(x, "tolist") else str(x)


def _json_sha256(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


# --- the store ----------------------------------------------------------------------------------

@dataclass
class Hit:
    folder: Path
    data: dict

    def file(self, name: str) -> Path:
        return self.folder / "files" / name


class BuildCache:
    """get(kind, key) -> Hit | None; put(kind, key, data, files). Disabled (--no-cache): every get misses
    and nothing is written."""

    def __init__(self, root: str | Path | None = None, enabled: bool = True, say=None):
        self.root = Path(root).expanduser() if root else default_dir()
        self.enabled = enabled
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self.problems: list[str] = []  # corrupt entries met in this build, one line each
        if enabled:
            self._sweep()

    def _tmp(self) -> Path:
        d = self.root / ".tmp" / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        d.mkdir(parents=True)
        return d

    def _sweep(self) -> None:
        """Remove the temp folders of builds that were killed before they could (their process is gone)."""
        tmp = self.root / ".tmp"
        for d in tmp.iterdir() if tmp.is_dir() else ():
            pid = d.name.split("-")[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                shutil.rmtree(d, ignore_errors=True)

    def _discard(self, folder: Path) -> None:
        try:  # renamed away first, so no half-deleted entry is ever visible under its key
            away = self._tmp()
            os.replace(folder, away / "old")
            shutil.rmtree(away, ignore_errors=True)
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)

    def get(self, kind: str, key: str) -> Hit | None:
        if not self.enabled:
            return None
        folder = self.root / kind / key
        if not folder.exists():
            return None
        why = _check(folder)
        if why is None:
            return Hit(folder, json.loads((folder / ENTRY).read_text())["data"])
        line = f"cache: the {kind} entry {key[:12]} was corrupt ({why}); rebuilding it"
        self.problems.append(line)
        self.say(line)
        self._discard(folder)
        return None

    def put(self, kind: str, key: str, data: dict, files: dict[str, Path] | None = None) -> dict:
        """Store a stage's result (JSON) and files; a failure to write (a full disk) costs the cache, not the build.
        Returns the result as JSON gives it back, so a cold build uses exactly what a warm one will read."""
        data = json.loads(json.dumps(data, default=_plain))
        if not self.enabled:
            return data
        from conversion.base import file_bytes, file_sha256
        tmp = None
        try:
            tmp = self._tmp()
            (tmp / "files").mkdir()
            table = {}
            for name, src in (files or {}).items():
                dst = tmp / "files" / name
                shutil.copytree(src, dst) if Path(src).is_dir() else shutil.copy2(src, dst)
                table[name] = {"bytes": file_bytes(dst), "sha256": file_sha256(dst)}
            entry = {"format": FORMAT, "kind": kind, "key": key, "files": table, "data": data,
                     "data_sha256": _json_sha256(data)}
            with open(tmp / ENTRY, "w") as f:
                f.write(json.dumps(entry, indent=1) + "\n")
                f.flush()
                os.fsync(f.fileno())
            final = self.root / kind / key
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # a corrupt entry that could not be dropped, or a concurrent build's
                self._discard(final)
            try:
                os.rename(tmp, final)
            except OSError:  # another build stored the same key first: theirs is as good
                pass
        except OSError as e:
            self.say(f"cache: could not store the {kind} entry ({e.strerror or e}); the build goes on without it")
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        return data

    def size(self) -> tuple[int, int]:
        """(bytes, entries) of everything stored."""
        total, entries = 0, 0
        for dirpath, _, names in os.walk(self.root):
            for n in names:
                try:
                    total += os.lstat(os.path.join(dirpath, n)).st_size
                except OSError:
                    pass
            entries += ENTRY in names and ".tmp" not in Path(dirpath).relative_to(self.root).parts
        return total, entries

    def describe(self) -> str:
        if not self.enabled:
            return f"cache: off (--no-cache); {self.root} left as it was"
        total, entries = self.size()
        return f"cache: {self.root} ({total / 1e6:.1f} MB, {entries} entries)"


def _check(folder: Path) -> str | None:
    """None when the entry is whole, else what is wrong with it."""
    from conversion.base import file_bytes, file_sha256
    try:
        entry = json.loads((folder / ENTRY).read_text())
    except FileNotFoundError:
        return "no entry.json"
    except (ValueError, OSError) as e:
        return f"bad JSON: {str(e)[:80]}"
    if not isinstance(entry, dict) or entry.get("format") != FORMAT or not isinstance(entry.get("files"), dict):
        return "not an entry of this format"
    if _json_sha256(entry.get("data")) != entry.get("data_sha256"):
        return "result checksum mismatch"
    for name, want in entry["files"].items():
        p = folder / "files" / name
        if not p.exists():
            return f"{name} missing"
        if file_bytes(p) != want.get("bytes"):
            return f"{name} truncated or grown ({file_bytes(p)} of {want.get('bytes')} bytes)"
        if file_sha256(p) != want.get("sha256"):
            return f"{name} checksum mismatch"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
