"""What the hardening cases are made from (tests/hardening_cases.py): a tiny checkpoint, a bundle from `anyir
build`, the committed one-conv .tflite and .mlpackage, a short training run, a stopped QAT run, a host profile;
and the helpers that read and rewrite a bundle's manifest and an artifact's record."""
from __future__ import annotations

import contextlib
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

@dataclass
class Assets:
    """What the cases are made from: built once per run (build_assets), the rest on first use (asset())."""
    root: Path
    ck: Path                 # a tiny checkpoint (safetensors + sidecar)
    bundle: Path             # a bundle from `anyir build` (its .pte: one conv, see conv_exports)
    pte: Path                # that .pte, with its record, inside the bundle
    cache: Path              # the build cache the bundle was built with (warm builds copy it)
    build_args: list = field(default_factory=list)  # `anyir build` flags that rebuild that bundle from the cache
    runner: object = None    # what runs the CLI for the assets made by it (a hardening_run.Server)
    extra: dict = field(default_factory=dict)


def copy_bundle(assets: Assets, d: Path) -> Path:
    dst = d / assets.bundle.name
    shutil.copytree(assets.bundle, dst, symlinks=True)
    return dst


def read_manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def write_manifest(bundle: Path, m: dict, refresh_files: bool = False, seal: bool = True) -> None:
    """seal: rewrite manifest.json.sha256 too, as a tamperer who knows the format would (what is tested is then
    the check of the manifest's content); seal=False leaves the old one, as a flip on disk would."""
    import hashlib
    if refresh_files:
        m["files"] = file_table(bundle)
    text = json.dumps(m, indent=1) + "\n"
    (bundle / "manifest.json").write_text(text)
    if seal:
        (bundle / "manifest.json.sha256").write_text(f"{hashlib.sha256(text.encode()).hexdigest()}  manifest.json\n")


def file_table(bundle: Path) -> dict:
    from conversion.base import file_sha256
    return {p.relative_to(bundle).as_posix(): {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
            for p in sorted(bundle.rglob("*"))
            if p.is_file() and p.name != "manifest.json" and p.relative_to(bundle).as_posix() != "manifest.json.sha256"}


def rewrite_record(artifact: Path) -> None:
    """Make the record (and a bundle manifest above it, if any) agree with the artifact's current bytes:
    tampering that also rewrites the checksums, so what is tested is the runtime's own loader."""
    from conversion.base import file_bytes, file_sha256, record_path
    rec = record_path(artifact)
    d = json.loads(rec.read_text())
    d["sha256"], d["bytes"] = file_sha256(artifact), max(1, file_bytes(artifact))
    rec.write_text(json.dumps(d, indent=1))
    for parent in artifact.parents[1:2]:  # a bundle's artifacts sit in <bundle>/<platform>/
        if (parent / "manifest.json").is_file():
            m = read_manifest(parent)
            for a in m["artifacts"]:
                if any((parent / r).resolve() == artifact.resolve() for r in a["paths"].values()):
                    a["sha256"], a["bytes"] = d["sha256"], d["bytes"]
            write_manifest(parent, m, refresh_files=True)
            break


# the 4-step run the resume cases start from (resumed with the same flags, --steps 6)
TRAIN_RUN_FLAGS = ["--preset", "anyir-tiny", "--tasks", "noise25", "--patch", "16", "--batch", "1", "--save-every", "2",
                   "--log-every", "1", "--keep", "2", "--quiet", "--threads", "1"]
TINY_QAT_FLAGS = ["--steps", "2", "--calibration", "1", "--patch", "16", "--batch", "1", "--calibration-patch", "16",
                  "--calibration-batch", "1", "--tasks", "noise25", "--threads", "1", "--quiet"]


# configs ---------------------------------------------------------------------------------------------------

class ConvSource:
    """A model source whose network is one 3x3 conv on the tile (for the real exporters: an AnyIR export
    costs 15-40 s; the runtimes' file parsing and the bundle's plumbing do not depend on the model). Everything
    but the network comes from `base` (a conversion.source.ModelSource) when given."""

    def __init__(self, base=None):
        import torch
        self.base, self.memo = base, {}
        self.preset = base.preset if base is not None else "anyir-tiny"
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1)).eval()

    @property
    def checkpoint_sha256(self) -> str:
        return self.base.checkpoint_sha256 if self.base is not None else "0" * 64

    def describe(self) -> dict:
        return self.base.describe() if self.base is not None else {"checkpoint": None, "preset": self.preset,
                                                                    "quant_state": None}

    def fp32_model(self):
        return self.net

    def reference(self, precision, spec):
        return self.net


def tiny_export(which: str, out: Path) -> Path:
    """A one-conv .pte / .tflite / .mlpackage at 32x32 and its record, written by the project's own backend."""
    import contextlib
    import warnings

    from conversion.base import InputSpec, get_backend, write_record
    backend = get_backend(which)
    out.mkdir(parents=True, exist_ok=True)
    f = out / f"tiny-conv-{which}-fp32-32x32{backend.suffix}"
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        art = backend.export(ConvSource(), InputSpec(32, 32), "fp32", f)
    write_record(art, out)
    return f


@contextlib.contextmanager
def conv_exports():
    """`anyir build` in this process with the ExecuTorch export of one conv instead of the model: every other
    stage (verify against the real eager model, photos, latency, vectors, report, manifest, cache) is the build's
    own. The artifact then misses its numeric floor (it is not the model) and ships as below-threshold."""
    from conversion.executorch_backend import ExecuTorchBackend
    orig = ExecuTorchBackend.export

    def export(self, source, spec, precision, out_file):
        return orig(self, ConvSource(source), spec, precision, out_file)
    ExecuTorchBackend.export = export
    try:
        yield
    finally:
        ExecuTorchBackend.export = orig


def build_assets(root: Path, quiet: bool = True) -> Assets:
    """Everything the cases are made from, in `root/assets`."""
    import torch

    from anyir_core import save_checkpoint
    from mobile.bundle import BuildConfig, build, verify_bundle
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import random_model

    a = root / "assets"
    a.mkdir(parents=True)
    ck = a / "tiny.safetensors"
    save_checkpoint(random_model(scale=0.05), ck, "anyir-tiny", {"recipe": {"tasks": ["noise25"]}})
    cache = a / "cache"
    (a / "build.json").write_text(json.dumps({"tasks": ["noise25"]}))
    # what rebuilds the bundle from `cache` in seconds (the export comes from the cache: no conv swap needed)
    build_args = ["--backends", "executorch", "--precisions", "fp32", "--size", "32", "--overlap", "8", "--repeats", "1",
                  "--config", str(a / "build.json"), "--quiet", "--jobs", "1"]
    cfg = BuildConfig(checkpoint=str(ck), backends=["executorch"], precisions=["fp32"], size=[32, 32], overlap=8,
                      tasks=["noise25"], out=str(a / "dist"), repeats=1, cache_dir=str(cache), jobs=1)
    threads = torch.get_num_threads()
    with conv_exports():
        bundle = build(cfg, quiet=quiet)
    torch.set_num_threads(threads)
    r = verify_bundle(bundle)
    assert r["ok"], r["problems"]
    pte = next((bundle / "android").glob("*.pte"))
    return Assets(root=root, ck=ck, bundle=bundle, pte=pte, cache=cache, build_args=build_args)


def asset(a: Assets, name: str) -> Path:
    """An asset made on first use: "tflite" / "mlpackage" (one-conv programs and their records), "run" (a
    finished 4-step training run, checkpoints at steps 2 and 4), "qat_partial" (a QAT run stopped after its
    first step), "profile_result" (a host profile of the bundle)."""
    if name in a.extra:
        return a.extra[name]
    d = a.root / "assets"
    if name in ("tflite", "mlpackage"):  # committed (tests/data/hardening/README.md says how they were made)
        a.extra[name] = FIXTURES / {"tflite": "tiny-conv-tflite-fp32-32x32.tflite",
                                    "mlpackage": "tiny-conv-coreml-fp32-32x32.mlpackage"}[name]
        return a.extra[name]
    if name == "qat_partial":
        a.extra[name] = _qat_partial(a, d / "qat-partial")
        return a.extra[name]
    argv = {"run": ["train", "--out", "run", *TRAIN_RUN_FLAGS, "--steps", "4"],
            "profile_result": ["profile", a.bundle, "--artifact", "executorch-fp32", "--no-reference", "--no-ops",
                               "--no-memory", "--runs", "2", "--warmup", "0", "--quiet", "--out", "host.json"]}[name]
    res = a.runner.run(argv, d, timeout=300)
    assert res.rc == 0, res.stderr[-2000:]
    a.extra[name] = d / {"run": "run", "profile_result": "host.json"}[name]
    return a.extra[name]


FIXTURES = Path(__file__).parent / "data" / "hardening"


def _qat_partial(a: Assets, q: Path) -> Path:
    """What `anyir qat --save-every 1 TINY_QAT_FLAGS` leaves when stopped after its first step, as far as
    `--resume` reads it before it trusts the files: the run's config.json and checkpoints/step_0000001/ (the
    learned state and trainer.pt). Made directly: a real run costs a trace and a calibration (8 s)."""
    from dataclasses import asdict

    import torch
    from safetensors.torch import save_file

    from conversion.quantize import quant_config_from
    flags = dict(zip(TINY_QAT_FLAGS[0::2], TINY_QAT_FLAGS[1::2]))
    flags.pop("--quiet", None)
    opts = {k[2:].replace("-", "_"): (v if k == "--tasks" else int(v)) for k, v in flags.items()}
    opts["tasks"] = opts["tasks"].split(",")
    cfg = quant_config_from({**opts, "save_every": 1})
    step = q / "checkpoints" / "step_0000001"
    step.mkdir(parents=True)
    (q / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    (q / "log.jsonl").write_text("")
    save_file({}, str(step / "quant.safetensors"))
    torch.save({"optimizer": {}, "step": 1, "log_lines": 0}, step / "trainer.pt")
    return q


if __name__ == "__main__" and sys.argv[1:2] == ["tiny-export"]:
    print(tiny_export(sys.argv[2], Path(sys.argv[3])))
