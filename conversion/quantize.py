"""int8: quantization-aware fine-tuning (QAT) and post-training calibration (PTQ) of the export form.

Scheme `w8a8-xnnpack`: weights int8 symmetric per output channel, activations int8 per tensor, as
ExecuTorch's XNNPACKQuantizer annotates them (convolutions, adds, muls, concatenations); by default
(`w8a8-xnnpack-float1`) every op at the input's full resolution stays float too (`float_levels`): that
level held nearly all of the int8 error (README, "Measured: int8 schemes"). The per-image
statistics (channel LayerNorm, the gate's mean/std, the attention's row norms; see
`anyir_core.export.STATISTICS_MODULES`) stay float: an int8 variance that rounds to zero would make
rsqrt infinite, and they are a negligible share of the MACs.

Every int8 artifact of every backend is converted from one saved quantization state, so they all carry
the same fine-tuned weights and the same learned ranges. The state is a folder:
`quant.safetensors` (the prepared graph's weights and fake-quantize buffers; no trace-time constants,
which depend on the tile size) + `quant.json` (scheme, mode, checkpoint hash, recipe, training log
summary). `load_quantized(state, H, W)` re-traces the export form at any tile size, loads the state and
converts it: that converted module is the fake-quantized PyTorch reference the artifacts are checked
against.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from anyir_core import AnyIRError, CheckpointError, export_form, load_checkpoint
from anyir_core.checkpoint import _atomic_write, read_safetensors
from anyir_core.data import PatchSampler
from anyir_core.degrade import parse_tasks
from anyir_core.export import STATISTICS_MODULES
from anyir_core.train import (_batches, _checkpoints, _Stop, _truncate_log, TrainingInterrupted, config_from, load_sources,
                              optimizer_step, resume_point, summarize_log)

from .base import file_sha256

SCHEME = "w8a8-xnnpack"
STATE_FILE, INFO_FILE = "quant.safetensors", "quant.json"
_MAX_BATCH = 64


def scheme_name(float_levels: int) -> str:
    """`w8a8-xnnpack` with every level int8, `w8a8-xnnpack-floatN` with N levels left float."""
    return f"{SCHEME}-float{float_levels}" if float_levels else SCHEME


@dataclass
class QuantConfig:
    mode: str = "qat"          # qat (calibrate, then fine-tune through the fake quantizers) or ptq (calibrate only)
    steps: int = 150
    calibration: int = 4       # batches per task that set the activation ranges (the union over tasks); as the build
    calibration_patch: int = 128
    calibration_batch: int = 4
    # QAT fine-tunes on 4 x 128x128 patches. Measured on the default checkpoint (float1, 40 steps after the
    # same calibration): at 256x256 (--patch 256 --batch 2) the int8 model restores haze 0.94 dB better than
    # fp32 (PTQ: 0.05), but that graph is less consistent with itself on haze (a few-ulp nudge of every
    # quantizer input moves a chelsea haze tile by 42.0 dB) and its int8 .tflite fell to 39.0 dB against the
    # reference (floor 40); at 128x128 QAT ties PTQ and every runtime passes (with float sigmoid outputs:
    # .pte 41.1, .tflite 40.3, Core ML W8A8 38.9 dB, floors 40 / 40 / 38). At 64x64 it cost haze 2.7 dB.
    patch: int = 128
    batch: int = 4
    lr: float = 5e-6
    min_lr: float = 1e-7
    warmup: float = 0.05
    weight_decay: float = 0.0
    fft_loss_weight: float = 0.1
    tasks: list[str] = field(default_factory=lambda: ["noise15", "noise25", "noise50", "rain", "haze"])
    data: list[str] = field(default_factory=lambda: ["builtin:train"])
    seed: int = 0
    save_every: int = 100
    log_every: int = 10
    workers: int = 0
    threads: int = 0
    float_levels: int = 1      # resolution levels whose ops stay float, from the full one down (make_quantizer)

    def validate(self) -> None:
        if self.mode not in ("qat", "ptq"):
            raise AnyIRError(f"quantization mode must be qat or ptq, got {self.mode!r}")
        self.tasks = parse_tasks(self.tasks)
        if self.calibration < 1:
            raise AnyIRError(f"--calibration must be at least 1 batch, got {self.calibration}")
        for name, v in (("steps", self.steps), ("batch", self.batch), ("save_every", self.save_every),
                        ("log_every", self.log_every)):
            if v < 1:
                raise AnyIRError(f"--{name.replace('_', '-')} must be at least 1, got {v}")
        if not 0 <= self.float_levels <= 4:
            raise AnyIRError(f"--float-levels must be 0 (all int8) to 4 (the U-Net has 4 levels), got {self.float_levels}")
        for name, v in (("patch", self.patch), ("calibration_patch", self.calibration_patch)):
            if v % 8 or v < 16:
                raise AnyIRError(f"--{name.replace('_', '-')} must be a multiple of 8 and at least 16, got {v}")
        for name, v in (("batch", self.batch), ("calibration_batch", self.calibration_batch)):
            if not 1 <= v <= _MAX_BATCH:
                raise AnyIRError(f"--{name.replace('_', '-')} must be 1 to {_MAX_BATCH}, got {v}")


def make_quantizer(qat: bool, float_levels: int = 1):
    """XNNPACK's int8 annotation, with the per-image statistics left float and the ops of the
    `float_levels` highest-resolution levels of the U-Net too (see strip_high_res)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                          get_symmetric_quantization_config)
    q = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=qat))
    for module_type in STATISTICS_MODULES:
        q.set_module_type(module_type, None)
    return _anyir_quantizer(q, float_levels)


def _spatial(node) -> tuple | None:
    val = node.meta.get("val")
    shape = getattr(val, "shape", None)
    return tuple(shape[-2:]) if shape is not None and len(shape) == 4 else None


def strip_high_res(gm: torch.fx.GraphModule, levels: int) -> int:
    """Remove the int8 annotation of every op whose output is at one of the `levels` highest resolutions
    (1: the input's full height and width; 2: also half of it; ...); returns how many. Their neighbours
    at lower resolutions keep theirs (a quantizer then sits on the edge)."""
    inputs = [n for n in gm.graph.nodes if n.op == "placeholder" and _spatial(n)]
    if not inputs:
        raise AnyIRError("cannot find the image input of the traced model")
    from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec

    full_h, full_w = _spatial(inputs[0])
    factor = 2 ** (levels - 1)

    def high_res(n) -> bool:
        hw = _spatial(n)
        return hw is not None and hw[0] * factor >= full_h and hw[1] * factor >= full_w

    key = "quantization_annotation"
    stripped = 0
    for n in gm.graph.nodes:
        if n.op == "call_function" and key in n.meta and high_res(n):
            del n.meta[key]
            stripped += 1

    def dangling(spec) -> bool:  # shares the quantization of a node or edge that no longer has one
        if not isinstance(spec, SharedQuantizationSpec):
            return False
        ref = spec.edge_or_node
        if isinstance(ref, torch.fx.Node):
            return key not in ref.meta or ref.meta[key].output_qspec is None
        src, user = ref
        return key not in user.meta or src not in user.meta[key].input_qspec_map

    changed = True
    while changed:  # ops that share a stripped op's quantization (views, pixel shuffles, cats) go float too
        changed = False
        for n in gm.graph.nodes:
            ann = n.meta.get(key)
            if ann is not None and any(dangling(sp) for sp in (ann.output_qspec, *ann.input_qspec_map.values())):
                del n.meta[key]
                stripped += 1
                changed = True
    return stripped


# A sigmoid's output stays float up to the op that reads it (an add or mul, which then runs in float and
# quantizes its own output). Two int8 forms of it were measured and left: a calibrated scale made an int8
# LOGISTIC that TFLite's own kernels refuse (output scale must be 1/256), so the .tflite loaded only where
# XNNPACK took every LOGISTIC op; TFLite's fixed 1/256 scale loaded everywhere but cost the default's haze
# tile 0.8 dB against its reference (.tflite 40.6 -> 39.8, .pte 42.3 -> 41.1 dB).
def float_sigmoid_outputs(gm: torch.fx.GraphModule) -> int:
    """Remove the int8 quantization of every edge from a sigmoid to its users; returns how many."""
    from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec

    key = "quantization_annotation"
    removed = 0
    for n in gm.graph.nodes:
        if n.op != "call_function" or n.target != torch.ops.aten.sigmoid.default:
            continue
        for user in n.users:
            ann = user.meta.get(key)
            if ann is None or n not in ann.input_qspec_map:
                continue
            del ann.input_qspec_map[n]
            removed += 1
            shares_edge = [sp for sp in (ann.output_qspec, *ann.input_qspec_map.values())
                           if isinstance(sp, SharedQuantizationSpec) and sp.edge_or_node == (n, user)]
            if shares_edge:  # nothing left to share with: the whole op goes float
                del user.meta[key]
    return removed


def _anyir_quantizer(inner, levels: int):
    from torchao.quantization.pt2e.quantizer import Quantizer

    class AnyIRQuantizer(Quantizer):
        """The wrapped XNNPACK annotation minus the `levels` highest-resolution levels (strip_high_res),
        with sigmoid outputs left float (float_sigmoid_outputs)."""

        def transform_for_annotation(self, model):
            return inner.transform_for_annotation(model)

        def annotate(self, model):
            model = inner.annotate(model)
            if levels:
                strip_high_res(model, levels)
            float_sigmoid_outputs(model)
            return model

        def validate(self, model):
            return inner.validate(model)

        def prepare_obs_or_fq_callback(self, model, edge_or_node_to_obs_or_fq):
            return inner.prepare_obs_or_fq_callback(model, edge_or_node_to_obs_or_fq)

    return AnyIRQuantizer()


def trace(fp_model: torch.nn.Module, height: int, width: int) -> torch.fx.GraphModule:
    """The export form traced at HxW (batch symbolic), for prepare() to copy: one trace serves every graph
    prepared at that size (QAT's, each task's calibration graph).

    Non-strict: on the default model torch.export's strict (Dynamo) tracing took 15 s against 4.5 s, and the
    graph differs only in the order of its placeholders, so a state saved from either loads into the other
    with bit-identical outputs (measured on a state made with strict tracing)."""
    from torch.export import Dim, export

    x = torch.rand(2, 3, height, width)
    return export(fp_model, (x,), dynamic_shapes={"x": {0: Dim("batch", min=1, max=_MAX_BATCH)}}, strict=False).module()


def prepare(fp_model: torch.nn.Module | None, height: int, width: int, qat: bool, float_levels: int = 1,
            traced: torch.fx.GraphModule | None = None):
    """The export form traced at HxW (batch symbolic) with fake-quantize (QAT) or observers (PTQ) inserted;
    `traced` (from trace() at the same size) is copied instead of tracing `fp_model` again."""
    import copy

    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e

    module = copy.deepcopy(traced) if traced is not None else trace(fp_model, height, width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (prepare_qat_pt2e if qat else prepare_pt2e)(module, make_quantizer(qat, float_levels))


def _traced_size(gm: torch.fx.GraphModule) -> int | None:
    """The (square) patch size a trace() was made at, from its input placeholder's example value."""
    for n in gm.graph.nodes:
        if n.op == "placeholder" and hasattr(n.meta.get("val"), "shape") and len(n.meta["val"].shape) == 4:
            h, w = n.meta["val"].shape[-2:]
            return int(h) if int(h) == int(w) else None
    return None


def _is_weight_quantizer(mod) -> bool:
    return bool(getattr(mod, "is_per_channel", False))


def task_samplers(cfg: QuantConfig) -> list[PatchSampler]:
    """One calibration sampler per task (same sources, patch and batch), in the order of cfg.tasks."""
    sources = load_sources(cfg.data, cfg.tasks)
    return [PatchSampler(sources, [task], cfg.calibration_patch, cfg.calibration_batch, seed=cfg.seed * 1000 + 101 + i)
            for i, task in enumerate(cfg.tasks)]


def _union_qparams(ranges: list[tuple[float, float]], quant_min: int, quant_max: int) -> tuple[float, int, float, float]:
    lo = min(0.0, min(r[0] for r in ranges))
    hi = max(0.0, max(r[1] for r in ranges))
    scale = max((hi - lo) / (quant_max - quant_min), 1e-8)
    zero_point = int(min(quant_max, max(quant_min, round(quant_min - lo / scale))))
    return scale, zero_point, lo, hi


@torch.no_grad()
def calibrate_activation_ranges(gm_qat, fp_model, samplers: list[PatchSampler], batches: int,
                                float_levels: int = 1, should_stop=None, traced=None) -> int:
    """Set the QAT graph's activation ranges from a PTQ calibration (histogram observers) and freeze them:
    QAT then adapts the weights to fixed, well-chosen ranges; PTQ is this step alone.

    Each sampler (one per task) is calibrated on its own `batches` batches and every quantizer gets the
    union of the per-task ranges. One pooled histogram treats a minority degradation's range as outliers:
    measured on the default checkpoint with 128x128 patches, the pooled ranges clipped 30% of the first
    decoder attention's output on held-out haze tiles (and 6-30% of the gate statistics), a colour shift
    of up to 0.015 on the whole image. Left to themselves (no calibration), the QAT fake-quantizers track a
    moving average of per-batch min/max, which on small patches settles narrower still (haze lost 2.7 dB).
    Returns the number of activation quantizers set. `should_stop()` is polled between batches: a true
    answer raises TrainingInterrupted (nothing is saved; calibration is rerun from the start). The
    observer graph is prepared once (from `traced`, a trace() at the samplers' patch size, when given) and
    copied fresh for each task."""
    import copy

    ranges: dict[str, list[tuple[float, float]]] = {}
    pristine: dict[int, torch.nn.Module] = {}

    def poll():
        if should_stop is not None and should_stop():
            raise TrainingInterrupted("stopped during calibration (nothing saved); run the same command again")

    for sampler in samplers:
        poll()
        if sampler.patch not in pristine:
            fits = traced if traced is not None and _traced_size(traced) == sampler.patch else None
            pristine[sampler.patch] = prepare(fp_model, sampler.patch, sampler.patch, qat=False,
                                              float_levels=float_levels, traced=fits)
        ptq = copy.deepcopy(pristine[sampler.patch])
        for step in range(batches):
            poll()
            ptq(sampler.draw(step)[0])
        for name, obs in ptq.named_modules():
            if hasattr(obs, "calculate_qparams") and not getattr(obs, "ch_axis", -1) >= 0:
                scale, zero_point = obs.calculate_qparams()
                lo = float((obs.quant_min - zero_point.float()) * scale)
                hi = float((obs.quant_max - zero_point.float()) * scale)
                ranges.setdefault(name, []).append((lo, hi))
    n = 0
    for name, mod in gm_qat.named_modules():
        if not hasattr(mod, "disable_observer") or _is_weight_quantizer(mod):
            continue
        if name not in ranges:
            raise AnyIRError(f"QAT and PTQ graphs differ at {name}; cannot carry calibrated ranges")
        scale, zero_point, lo, hi = _union_qparams(ranges[name], mod.quant_min, mod.quant_max)
        inner = mod.activation_post_process
        inner.min_val.data = torch.tensor(lo)
        inner.max_val.data = torch.tensor(hi)
        mod.scale.data = torch.full(mod.scale.shape, scale)
        mod.zero_point.data = torch.full(mod.zero_point.shape, zero_point, dtype=mod.zero_point.dtype)
        mod.disable_observer()
        n += 1
    return n


@torch.no_grad()
def refresh_weight_ranges(gm, height: int, width: int) -> None:
    """Set every weight quantizer's range to its weights' exact per-channel min/max.

    During QAT the weight quantizers track a moving average of the changing weights, which can lag them:
    in the shipped state 17,581 of 931,756 weights lay outside those averaged ranges and would have been
    clipped at conversion (its task PSNR moved by at most 0.02 dB once they were not; the haze gap to
    fp32 has another cause)."""
    weight_quantizers = {id(m): m for _, m in gm.named_modules() if _is_weight_quantizer(m)}.values()
    for mod in weight_quantizers:
        obs = mod.activation_post_process
        obs.min_val.data = torch.tensor([])
        obs.max_val.data = torch.tensor([])
        mod.enable_observer()
    gm(torch.zeros(1, 3, height, width))  # activation observers are frozen; weight ones see the weights once
    for mod in weight_quantizers:
        mod.disable_observer()


def _learned_state(gm: torch.nn.Module) -> dict:
    # `_tensor_constant*` are trace-time scalars (1/sqrt(HW), eps): they belong to the traced size, not the state
    return {k: v.detach().contiguous().clone() for k, v in gm.state_dict().items()
            if not k.startswith("_tensor_constant")}


def _save_state(folder: Path, gm, info: dict) -> None:
    from safetensors.torch import save_file

    meta = {"format": "anyir-mobile/quant/1", "scheme": info["scheme"], "mode": info["mode"], "preset": info["preset"]}
    _atomic_write(folder / STATE_FILE, lambda t: save_file(_learned_state(gm), t, metadata=meta))
    _atomic_write(folder / INFO_FILE, lambda t: Path(t).write_text(json.dumps(info, indent=2) + "\n"))


def read_quant_info(state: str | Path) -> dict:
    folder = Path(state)
    if not (folder / STATE_FILE).is_file() or not (folder / INFO_FILE).is_file():
        raise CheckpointError(f"{folder}: not a quantization state (no {STATE_FILE} + {INFO_FILE}); run `anyir qat`")
    try:
        info = json.loads((folder / INFO_FILE).read_text())
    except ValueError:
        raise CheckpointError(f"{folder / INFO_FILE}: unreadable") from None
    if not isinstance(info, dict):
        raise CheckpointError(f"{folder / INFO_FILE}: not a quantization record (a JSON object); make the state again "
                              "with `anyir qat`")
    missing = [k for k, kind in _INFO_KEYS.items() if not isinstance(info.get(k), kind)]
    if missing or not isinstance(info.get("recipe", {}), dict):
        raise CheckpointError(f"{folder / INFO_FILE}: {', '.join(missing) or 'recipe'} missing or of the wrong type; "
                              "make the state again with `anyir qat`")
    return info


# what the loaders and the manifest read from quant.json
_INFO_KEYS = {"checkpoint": str, "checkpoint_sha256": str, "preset": str, "scheme": str, "mode": str}


def float_levels(info: dict) -> int:
    """How many resolution levels a state keeps float (states from before that option: none)."""
    return int(info.get("recipe", {}).get("float_levels", 0))


def state_sha256(state: str | Path) -> str:
    return file_sha256(Path(state) / STATE_FILE)


def resolve_checkpoint(checkpoint: str) -> Path:
    from anyir_core.checkpoint import BUILTIN
    return Path(BUILTIN[checkpoint]) if checkpoint in BUILTIN else Path(checkpoint)


def checkpoint_sidecar(checkpoint: str) -> dict:
    """The JSON sidecar of a checkpoint (preset, recipe, metrics), or {} when it has none; a CheckpointError
    when it is there but damaged (its recipe decides QAT's tasks and goes into a bundle's provenance)."""
    sidecar = resolve_checkpoint(checkpoint).with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        side = json.loads(sidecar.read_text())
    except ValueError:  # (UnicodeDecodeError is one too)
        side = None
    if not isinstance(side, dict) or not isinstance(side.get("recipe", {}), dict):
        raise CheckpointError(f"{sidecar}: the checkpoint's sidecar is damaged (not a JSON object with an object "
                              "`recipe`); restore it, or remove it to go without one")
    return side


def load_prepared(state: str | Path, height: int, width: int, checkpoint: str | None = None):
    """A quantization state loaded into the QAT graph traced at HxW, in eval mode with exact weight ranges:
    what load_quantized converts (copy it before converting, to convert it more than once)."""
    from torchao.quantization.pt2e import move_exported_model_to_eval

    folder = Path(state)
    info = read_quant_info(folder)
    ck = resolve_checkpoint(checkpoint or info["checkpoint"])
    if not ck.is_file():
        raise CheckpointError(f"{folder}: its checkpoint {ck} is gone; pass the checkpoint it was made from")
    if file_sha256(ck) != info["checkpoint_sha256"]:
        raise CheckpointError(f"{folder} was made from another checkpoint than {ck} (sha256 differs)")
    fp = export_form(load_checkpoint(ck, preset=info["preset"]))
    gm = prepare(fp, height, width, qat=True, float_levels=float_levels(info))
    saved, _ = read_safetensors(folder / STATE_FILE)
    expected = {k for k in gm.state_dict() if not k.startswith("_tensor_constant")}
    if set(saved) != expected:
        raise CheckpointError(f"{folder}: state does not fit this model/quantizer ({len(set(saved) ^ expected)} keys differ)")
    gm.load_state_dict(saved, strict=False)
    move_exported_model_to_eval(gm)
    refresh_weight_ranges(gm, height, width)
    return gm, info


def convert(prepared, fold: bool = True):
    """The Q/DQ module of a load_prepared() graph (which it consumes)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_pt2e(prepared, fold_quantize=fold)


def load_quantized(state: str | Path, height: int, width: int, checkpoint: str | None = None, fold: bool = True):
    """The converted (Q/DQ) reference module of a quantization state, traced at HxW, in eval mode.

    `fold=False` keeps each weight as float + quantize_per_channel instead of a folded int8 constant (same
    numbers): the form litert-torch turns into int8 TFLite tensors."""
    gm, info = load_prepared(state, height, width, checkpoint)
    return convert(gm, fold), info


def quantize(checkpoint: str, out: str | Path, cfg: QuantConfig, preset: str | None = None, resume: bool = False,
             quiet: bool = False, stop_after: int | None = None) -> Path:
    """QAT-fine-tune (or PTQ-calibrate) `checkpoint` into the state folder `out`; resumable."""
    cfg.validate()
    out = Path(out)
    ck = resolve_checkpoint(checkpoint)
    model = load_checkpoint(checkpoint, preset=preset)
    preset = getattr(model, "preset", preset)
    if (out / STATE_FILE).is_file() and not resume:
        raise AnyIRError(f"{out} already holds a quantization state; choose another --out")
    existing = _checkpoints(out)
    if existing and not resume:
        raise AnyIRError(f"{out} holds an unfinished run; pass --resume to continue it")
    if resume and (out / "config.json").is_file():
        try:
            saved = json.loads((out / "config.json").read_text())
        except ValueError:
            raise AnyIRError(f"{out / 'config.json'}: damaged (not JSON); start a new run with another --out") from None
        if saved != asdict(cfg):
            raise AnyIRError("--resume with different settings; use the run's config.json")
    threads_before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # SIGINT/SIGTERM only set a flag from here on, polled between calibration batches and training steps. In
    # one CI run a SIGINT sent during calibration never stopped the build (no error, QAT ran on); the likely
    # cause is a KeyboardInterrupt swallowed inside torch.export's tracing. A flag cannot be swallowed.
    stop = _Stop()
    stop.__enter__()
    try:
        torch.manual_seed(cfg.seed)
        # both modes hold fake quantizers with calibrated, frozen activation ranges; PTQ stops there
        fp = export_form(model)
        traced = trace(fp, cfg.patch, cfg.patch)  # one trace for QAT's graph and the calibration graph
        gm = prepare(fp, cfg.patch, cfg.patch, qat=True, float_levels=cfg.float_levels, traced=traced)
        if stop.requested:
            raise TrainingInterrupted("stopped before calibration (nothing saved); run the same command again")
        steps = cfg.steps if cfg.mode == "qat" else 0
        params = [p for p in gm.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay) if steps else None
        step, log_lines = resume_point(existing if resume else [], lambda ck_dir: _load_step(ck_dir, gm, opt), out,
                                       "; start again with another --out")
        made = next((p for p in reversed((out, *out.parents)) if not p.exists()), None)  # the first folder made
        try:
            return _run(out, cfg, gm, fp, traced, opt, steps, step, log_lines, preset, checkpoint, ck, stop, quiet,
                        stop_after)
        except BaseException:
            if made is not None and not _checkpoints(out):  # nothing saved yet: leave no half-made output folder
                shutil.rmtree(made, ignore_errors=True)
            raise
    finally:
        stop.__exit__(None, None, None)
        torch.set_num_threads(threads_before)


def _run(out: Path, cfg: QuantConfig, gm, fp, traced, opt, steps: int, step: int, log_lines: int, preset, checkpoint,
         ck: Path, stop, quiet: bool, stop_after: int | None) -> Path:
    """quantize() from the output folder on: calibration (unless resumed), the QAT steps, the saved state."""
    from safetensors import SafetensorError

    try:
        out.mkdir(parents=True, exist_ok=True)
        _atomic_write(out / "config.json", lambda t: Path(t).write_text(json.dumps(asdict(cfg), indent=2) + "\n"))
        _truncate_log(out / "log.jsonl", log_lines)
        sampler = (PatchSampler(load_sources(cfg.data, cfg.tasks), cfg.tasks, cfg.patch, cfg.batch, seed=cfg.seed * 1000 + 17)
                   if steps else None)  # PTQ draws only calibration batches
        if step == 0:
            if not quiet:
                print(f"calibrating activation ranges: {cfg.calibration} batches per task x {len(cfg.tasks)} tasks",
                      file=sys.stderr)
            calibrate_activation_ranges(gm, fp, task_samplers(cfg), cfg.calibration,
                                        cfg.float_levels, should_stop=lambda: stop.requested, traced=traced)
        batches = _batches(sampler, step, steps, cfg.workers) if steps else None
        bar = None
        if not quiet and steps:
            from tqdm import tqdm
            bar = tqdm(total=steps, initial=step, desc=f"{cfg.mode} {preset}", unit="step", dynamic_ncols=True)
        base = {"mode": cfg.mode, "scheme": scheme_name(cfg.float_levels), "preset": preset, "checkpoint": str(checkpoint),
                "checkpoint_sha256": file_sha256(ck), "recipe": asdict(cfg)}
        done_here, t0 = 0, time.perf_counter()
        with open(out / "log.jsonl", "a") as log:
            while step < steps:
                inp, tgt, _ = next(batches)
                loss, parts = optimizer_step(gm, opt, cfg, step, inp, tgt)
                step += 1
                done_here += 1
                if step % cfg.log_every == 0 or step == steps:
                    rate = done_here * cfg.batch / (time.perf_counter() - t0)
                    log.write(json.dumps({"step": step, "loss": loss.item(), **parts, "patches_per_s": round(rate, 2),
                                          "time": time.time()}) + "\n")
                    log.flush()
                    log_lines += 1
                if bar:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss.item():.4f}")
                interrupted = stop.requested or (stop_after is not None and done_here >= stop_after)
                if step % cfg.save_every == 0 or interrupted:
                    _save_step(out, gm, opt, step, log_lines)
                if stop.requested:
                    raise TrainingInterrupted(f"stopped at step {step} (saved); continue with --resume")
                if interrupted:
                    return out
        if bar:
            bar.close()
        info = {**base, "steps": step, "training": summarize_log(out / "log.jsonl") if steps else None}
        _save_state(out, gm, info)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        return out
    except SafetensorError as e:  # its I/O errors (a full disk) are not OSErrors
        raise AnyIRError(f"{out}: could not write the quantization state ({str(e).splitlines()[0][:160]})") from None


def _load_step(ck_dir: Path, gm, opt) -> tuple[int, int]:
    """(step, log lines) of a saved QAT checkpoint, loaded into `gm` and `opt`; a CheckpointError for anything
    damaged or that does not fit (both are then left as they were, for the checkpoint before)."""
    state, _ = read_safetensors(ck_dir / STATE_FILE)
    try:  # weights_only: a pickle carrying code is refused here, its code never runs
        trainer = torch.load(ck_dir / "trainer.pt", map_location="cpu", weights_only=True)
        step, log_lines = int(trainer["step"]), int(trainer["log_lines"])
        optimizer = trainer["optimizer"]
    except Exception as e:  # noqa: BLE001 - whatever a damaged file makes the unpickler raise
        why = str(e).splitlines()[0][:100] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{ck_dir}/trainer.pt: unreadable ({why})") from None
    gm_before = {k: v.clone() for k, v in gm.state_dict().items()}
    opt_before = opt.state_dict() if opt is not None else None
    try:
        missing, unexpected = gm.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("_tensor_constant") for k in missing):
            raise KeyError(f"{len(unexpected) + len(missing)} keys differ")
        if opt is not None:
            opt.load_state_dict(optimizer)
        return step, log_lines
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
        gm.load_state_dict(gm_before)
        if opt is not None:
            opt.load_state_dict(opt_before)
        raise CheckpointError(f"{ck_dir}: does not fit this run ({str(e).splitlines()[0][:100]})") from None


def _save_step(out: Path, gm, opt, step: int, log_lines: int) -> None:
    from safetensors.torch import save_file

    ckdir = out / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    tmp, final = ckdir / f".tmp_step_{step:07d}", ckdir / f"step_{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_file(_learned_state(gm), str(tmp / STATE_FILE))
        try:
            torch.save({"optimizer": opt.state_dict() if opt else {}, "step": step, "log_lines": log_lines},
                       tmp / "trainer.pt")
        except RuntimeError as e:  # torch's zip writer reports a failed write (a full disk) as a RuntimeError
            raise AnyIRError(f"{tmp / 'trainer.pt'}: could not be written ({str(e).splitlines()[0][:160]})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in _checkpoints(out)[:-2]:  # the one before stays: a damaged newest one falls back to it
        shutil.rmtree(old, ignore_errors=True)


def quant_config_from(opts: dict) -> QuantConfig:
    return config_from(QuantConfig, opts, "quantization")
