"""The backend protocol: a backend exports an artifact, loads it, and runs it; everything else
(verification, profiling, bundling) is written once against this file.

A backend module defines a `Backend` subclass and decorates it with `@register`. Every artifact
gets a record (`Artifact`) written next to it as `<file>.json`; the bundle manifest carries the same
fields.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from anyir_core import AnyIRError
from anyir_core.checkpoint import _atomic_write

PRECISIONS = ("fp32", "fp16", "int8", "int8w")  # int8w: int8 weights, float compute (Core ML)
RECORD_FORMAT = "anyir-mobile/artifact/1"


class BackendUnavailable(AnyIRError):
    """The backend's runtime or converter is not installed or cannot run on this machine."""


class ArtifactError(AnyIRError):
    """An artifact that is missing, corrupt, or used with inputs it was not exported for."""


@dataclass
class InputSpec:
    """What the artifact takes and returns: one fixed-size tile."""
    height: int = 256
    width: int = 256
    batch: int = 1
    layout: str = "NCHW"       # NCHW or NHWC
    dtype: str = "float32"
    value_range: tuple[float, float] = (0.0, 1.0)
    color_order: str = "RGB"

    @property
    def shape(self) -> tuple[int, ...]:
        if self.layout == "NHWC":
            return (self.batch, self.height, self.width, 3)
        return (self.batch, 3, self.height, self.width)

    def check(self, x: np.ndarray) -> None:
        if tuple(x.shape) != self.shape:
            raise ArtifactError(f"input of shape {tuple(x.shape)} given to an artifact exported for {self.shape} "
                                f"({self.layout}); tile the image or export another size with --size")


@dataclass
class Artifact:
    """The record of one converted file."""
    backend: str
    precision: str
    file: str                                   # name, relative to the record's folder
    input: InputSpec = field(default_factory=InputSpec)
    preset: str = ""
    checkpoint_sha256: str = ""
    quant_state_sha256: str | None = None       # int8: the QAT/PTQ state it was converted from
    quant_scheme: str | None = None
    source: dict = field(default_factory=dict)  # checkpoint / quant-state paths it was made from (for verify)
    tools: dict = field(default_factory=dict)   # package -> version used to write the file
    runtime: dict = field(default_factory=dict) # what an app needs (minimum OS / runtime version, delegate)
    details: dict = field(default_factory=dict) # backend-specific (delegation report, op counts, ...)
    bytes: int = 0
    sha256: str = ""
    format: str = RECORD_FORMAT

    def path(self, folder: str | Path) -> Path:
        return Path(folder) / self.file

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input"]["value_range"] = list(self.input.value_range)
        d["input"]["shape"] = list(self.input.shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Artifact":
        d = dict(d)
        spec = {k: v for k, v in d.pop("input").items() if k != "shape"}
        spec["value_range"] = tuple(spec.get("value_range", (0.0, 1.0)))
        return cls(input=InputSpec(**spec), **d)


def record_path(artifact_file: str | Path) -> Path:
    p = Path(artifact_file)
    return p.with_name(p.name + ".json")


def write_record(art: Artifact, folder: str | Path) -> Path:
    path = record_path(Path(folder) / art.file)
    _atomic_write(path, lambda t: Path(t).write_text(json.dumps(art.to_dict(), indent=2) + "\n"))
    return path


def read_record(artifact_file: str | Path) -> Artifact:
    """The record of an artifact file (or of the record itself); checks that the file is the one described."""
    p = Path(artifact_file)
    if p.name.endswith(".json") and not p.is_dir():
        p = p.with_name(p.name[:-5])
    rec = record_path(p)
    if not p.exists():
        raise ArtifactError(f"{p}: no such artifact")
    if not rec.is_file():
        raise ArtifactError(f"{p}: no record {rec.name} beside it; export it with `anyir export`")
    try:
        d = json.loads(rec.read_text())
        if not isinstance(d, dict) or not isinstance(d.get("input"), dict):
            raise TypeError("not a JSON object with an `input` object")
        art = Artifact.from_dict(d)
        spec = art.input
        if not all(type(v) is int and v > 0 for v in (spec.height, spec.width, spec.batch)) or \
                not all(isinstance(v, str) for v in (art.backend, art.precision, art.file, art.sha256, spec.layout)):
            raise TypeError("a size that is not a positive integer, or a name that is not a string")
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ArtifactError(f"{rec}: not an artifact record ({str(e)[:120]})") from None
    if art.file != p.name:  # what would be loaded must be the file whose checksum is checked here
        raise ArtifactError(f"{rec}: names the file {art.file[:80]!r}, not {p.name!r} beside it; a record describes "
                            "only its own artifact")
    if art.sha256 and file_sha256(p) != art.sha256:
        raise ArtifactError(f"{p}: checksum differs from its record (modified or truncated file)")
    return art


def file_sha256(path: str | Path) -> str:
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:  # a directory artifact (.mlpackage) hashes its files' relative names and bytes
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def file_bytes(path: str | Path) -> int:
    p = Path(path)
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size


def tool_versions(*packages: str) -> dict:
    out = {"python": platform.python_version()}
    for name in ("torch", "anyir-mobile", *packages):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


class Runner:
    """A loaded artifact. `run(x)` takes and returns float32 arrays in the artifact's layout."""

    def __init__(self, artifact: Artifact):
        self.artifact = artifact

    def run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def run_nchw(self, x: np.ndarray) -> np.ndarray:
        """NCHW in, NCHW out, whatever the artifact's layout."""
        if self.artifact.input.layout == "NHWC":
            return np.ascontiguousarray(self.run(np.ascontiguousarray(x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2))
        return self.run(np.ascontiguousarray(x, dtype=np.float32))


class Backend:
    """One mobile runtime. Subclasses set `name`, `suffix`, `precisions` and implement the verbs."""
    name = ""
    suffix = ""
    precisions: tuple[str, ...] = ()
    layouts: tuple[str, ...] = ("NCHW",)
    can_run_here = True  # False where the runtime cannot execute on this host (verify then says how it checks)
    not_yet: dict[str, str] = {}  # precision -> why it is refused (open work), for a one-line error

    def check(self, precision: str, layout: str) -> None:
        if precision not in self.precisions:
            raise BackendUnavailable(self.not_yet.get(precision)
                                     or f"{self.name} exports {', '.join(self.precisions)}, not {precision}")
        if layout not in self.layouts:
            raise BackendUnavailable(f"{self.name} artifacts take {' or '.join(self.layouts)} input, not {layout}")

    def available(self) -> str | None:
        """None when usable here, else one line saying what is missing."""
        return None

    def export(self, source, spec: InputSpec, precision: str, out_file: Path) -> Artifact:
        """Write `out_file` from `source` (a conversion.source.ModelSource) and return its record."""
        raise NotImplementedError

    def load(self, artifact: Artifact, folder: Path) -> Runner:
        raise NotImplementedError

    def profile(self, artifact: Artifact, folder: Path, repeats: int = 10) -> dict:
        """Per-op (or per-method) timings on this host; backends without a profiler raise."""
        raise BackendUnavailable(f"{self.name}: no profiler on this host")


_REGISTRY: dict[str, type[Backend]] = {}
# backend name -> module that registers it (imported on first use, so a missing runtime only
# matters to the backend that needs it)
KNOWN_BACKENDS = {"executorch": "conversion.executorch_backend", "tflite": "conversion.tflite_backend",
                  "coreml": "conversion.coreml_backend"}
# backends that are open work: named, refused with the reason, and reported as such by `anyir build`
PLANNED_BACKENDS: dict[str, str] = {}


def register(cls: type[Backend]) -> type[Backend]:
    _REGISTRY[cls.name] = cls
    return cls


def get_backend_class(name: str) -> type[Backend]:
    if name in PLANNED_BACKENDS:
        raise BackendUnavailable(PLANNED_BACKENDS[name])
    if name not in KNOWN_BACKENDS:
        raise AnyIRError(f"unknown backend {name!r}; choose from {', '.join(KNOWN_BACKENDS)}")
    if name not in _REGISTRY:
        try:
            importlib.import_module(KNOWN_BACKENDS[name])
        except ImportError as e:
            raise BackendUnavailable(f"backend {name!r} cannot be imported here: {e}") from None
    return _REGISTRY[name]


def get_backend(name: str) -> Backend:
    backend = get_backend_class(name)()
    missing = backend.available()
    if missing:
        raise BackendUnavailable(f"backend {name!r} is not usable here: {missing}")
    return backend


def list_backends() -> list[str]:
    return list(KNOWN_BACKENDS)
