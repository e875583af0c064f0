"""Core ML: ML Program `.mlpackage` files through coremltools from the export form, executed here by
the project's own reference interpreter (conversion.mil_interpreter); on macOS `MLModel.predict`
runs as well and `anyir verify` reports both.

Precisions (compute precision of the program; deployment target iOS 17 / macOS 14, opset CoreML7):
- fp16 (default; what the GPU and Neural Engine run): fp16 weights, activations and I/O.
- fp32: fp32 throughout (CPU only on device; the numeric reference among the Core ML files).
- int8: W8A8 from the QAT state's Q/DQ graph: per-channel int8 weights (`constexpr_affine_dequantize`)
  and the QAT-learned activation scales (`quantize`/`dequantize` pairs), fp16 in between.
- int8w: int8 weight-only (coremltools' per-channel symmetric linear quantization of the fp16
  program): the size option; compute stays fp16 and it is checked against eager fp32.

Layouts: `NCHW` takes an MLMultiArray (1, 3, H, W) in [0, 1]; `image` takes an RGB image (a
CVPixelBuffer in the app) and scales its 0..255 pixels by 1/255 inside the program.
"""
from __future__ import annotations

import collections
import contextlib
import copy
import json
import platform
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .base import Artifact, ArtifactError, Backend, InputSpec, Runner, file_bytes, file_sha256, register, tool_versions

DEPLOYMENT_TARGET = "iOS17"
METADATA_KEY = "anyir_mobile"
INPUT_NAME, OUTPUT_NAME = "image", "restored"
# files coremltools leaves in a package that no runtime reads (its ExecuTorch debug-handle map)
_STRAY_FILES = ("executorch_debug_handle_mapping.json",)


@contextlib.contextmanager
def _disk_errors(out_file: Path):
    """coremltools writes the weights (under $TMPDIR during the conversion) through its C++ blob writer, which
    reports a failed write (a full disk) as RuntimeError('[MIL FileWriter]: Unknown error ...'), no OSError."""
    try:
        yield
    except RuntimeError as e:
        if "FileWriter" not in str(e):
            raise
        tb = e.__traceback__
        while tb is not None:  # its weights folder (a TemporaryDirectory in ct.convert): removed now, not at exit
            for value in list(tb.tb_frame.f_locals.values()):
                if isinstance(value, tempfile.TemporaryDirectory):
                    value.cleanup()
            tb = tb.tb_next
        raise ArtifactError(f"{out_file.name}: Core ML could not write the weights ({str(e).splitlines()[0][:120]}); "
                            f"the disk holding {tempfile.gettempdir()} (TMPDIR) or {out_file.parent} is full or not "
                            "writable; free some space") from None


def fold_constant_dequantize(gm: torch.fx.GraphModule) -> tuple[torch.fx.GraphModule, int]:
    """A copy of a Q/DQ module whose per-tensor dequantized constants are plain float constants.

    coremltools 9.0 mis-converts a constant int8 tensor dequantized per tensor with zero point -128
    (it shifts the zero point to uint8's +128 without shifting the data): the QAT graph's quantized
    scalar 1.0 (an operand of `1 + x`) arrives as -1/255 and the program computes nonsense (18 dB
    from the reference). The dequantized value is exact in float, so folding it changes nothing the
    reference computes; the per-channel weights stay int8."""
    dq = torch.ops.quantized_decomposed.dequantize_per_tensor.default
    gm = copy.deepcopy(gm)
    folded = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target is not dq or getattr(node.args[0], "op", None) != "get_attr":
            continue
        value = gm
        for part in node.args[0].target.split("."):
            value = getattr(value, part)
        name = f"_anyir_float_constant_{folded}"
        gm.register_buffer(name, dq(value, *node.args[1:]))
        with gm.graph.inserting_before(node):
            node.replace_all_uses_with(gm.graph.get_attr(name))
        gm.graph.erase_node(node)
        folded += 1
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm, folded


def _replace_dir(staged: Path, dest: Path) -> None:
    """Move a finished package into place; an existing one is swapped out only after that."""
    old = dest.with_name(f".{dest.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if dest.exists():
        dest.rename(old)
    staged.rename(dest)
    if old.exists():
        shutil.rmtree(old)


def read_metadata(package: Path) -> dict:
    """The package's model description: author, license, descriptions and the anyir_mobile JSON."""
    from .mil_interpreter import load_spec

    d = load_spec(package).description
    user = dict(d.metadata.userDefined)
    return {"author": d.metadata.author, "license": d.metadata.license, "description": d.metadata.shortDescription,
            "version": d.metadata.versionString,
            "inputs": {i.name: i.shortDescription for i in d.input}, "outputs": {o.name: o.shortDescription for o in d.output},
            "input_types": {i.name: i.type.WhichOneof("Type") for i in d.input},
            METADATA_KEY: json.loads(user[METADATA_KEY]) if METADATA_KEY in user else None, "user_defined": user}


@register
class CoreMLBackend(Backend):
    name = "coreml"
    suffix = ".mlpackage"
    precisions = ("fp16", "fp32", "int8", "int8w")
    layouts = ("NCHW", "image")
    # numeric floors (PSNR vs the reference) where Core ML's differ from verify's defaults
    thresholds = {"int8w": 35.0}  # int8 (W8A8): the int8 rule of conversion/verify.py

    def available(self) -> str | None:
        try:
            import coremltools  # noqa: F401
            from coremltools.proto import MIL_pb2  # noqa: F401
        except ImportError as e:
            return f"coremltools is not installed ({e}); pip install coremltools==9.0"
        return None

    @staticmethod
    def _exported(source, spec: InputSpec, precision: str):
        """The torch.export program a package is converted from: the float export form for fp32 / fp16 /
        int8w and either layout (exported once per build), the Q/DQ graph for int8."""
        kind = "int8" if precision == "int8" else "float"
        key = ("coreml", kind, spec.height, spec.width)
        if key not in source.memo:
            folded = 0
            if kind == "int8":
                net, folded = fold_constant_dequantize(source.quantized_model(spec, fold=True))
            else:
                net = source.fp32_model().eval()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ep = torch.export.export(net, (torch.rand(1, 3, spec.height, spec.width),)).run_decompositions({})
            source.memo[key] = (ep, folded)
        return source.memo[key]

    def export(self, source, spec: InputSpec, precision: str, out_file: Path) -> Artifact:
        import coremltools as ct

        self.check(precision, spec.layout)
        ep, folded = self._exported(source, spec, precision)
        shape = (1, 3, spec.height, spec.width)
        if spec.layout == "image":
            spec = InputSpec(**{**spec.__dict__, "value_range": (0.0, 255.0)})
            inp = ct.ImageType(name=INPUT_NAME, shape=shape, scale=1.0 / 255.0, color_layout=ct.colorlayout.RGB)
        else:
            inp = ct.TensorType(name=INPUT_NAME, shape=shape)
        out_file = Path(out_file)
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr), _disk_errors(out_file):
            warnings.simplefilter("ignore")
            ml = ct.convert(ep, inputs=[inp], outputs=[ct.TensorType(name=OUTPUT_NAME)], convert_to="mlprogram",
                            minimum_deployment_target=getattr(ct.target, DEPLOYMENT_TARGET),
                            compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16)
            if precision == "int8w":
                from coremltools.optimize import coreml as cto
                cfg = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
                    mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=0))
                ml = cto.linear_quantize_weights(ml, config=cfg)
        meta = {"format": "anyir-mobile/coreml-metadata/1", "model": "AnyIR", "preset": source.preset,
                "precision": precision, "layout": spec.layout, "shape": list(spec.shape), "tile": [spec.height, spec.width],
                "value_range": list(spec.value_range), "color_order": spec.color_order,
                "output_range": [0.0, 1.0], "deployment_target": DEPLOYMENT_TARGET,
                "checkpoint_sha256": source.checkpoint_sha256}
        from anyir_core import __version__
        ml.author = "AnyIR Mobile"
        ml.license = "MIT (AnyIR Mobile SDK and its trained weights)"
        ml.version = __version__
        ml.short_description = (f"AnyIR all-in-one image restoration ({source.preset}, {precision}): removes noise, rain "
                                f"and haze from one {spec.height}x{spec.width} RGB tile; tile larger photos with overlap.")
        ml.input_description[INPUT_NAME] = (
            f"RGB image tile {spec.height}x{spec.width}" if spec.layout == "image"
            else f"RGB tile, shape {list(spec.shape)}, float in [0, 1], NCHW")
        ml.output_description[OUTPUT_NAME] = f"restored RGB tile, shape [1, 3, {spec.height}, {spec.width}], float in [0, 1] (clip)"
        ml.user_defined_metadata[METADATA_KEY] = json.dumps(meta, sort_keys=True)
        for k in ("precision", "layout", "preset"):
            ml.user_defined_metadata[f"anyir.{k}"] = str(meta[k])
        ml.user_defined_metadata["anyir.tile"] = f"{spec.height}x{spec.width}"
        with tempfile.TemporaryDirectory(dir=out_file.parent, prefix=f".{out_file.name}.") as tmp:
            staged = Path(tmp) / out_file.name
            with _disk_errors(out_file):
                ml.save(str(staged))
            for name in _STRAY_FILES:
                (staged / name).unlink(missing_ok=True)
            from .mil_interpreter import Program
            prog = Program(staged)  # the interpreter must take it before it ships (refuses unknown ops by name)
            _replace_dir(staged, out_file)
        in_dtype = np.dtype(prog.inputs[INPUT_NAME][0]).name
        if in_dtype != "float32":
            spec = InputSpec(**{**spec.__dict__, "dtype": in_dtype})
        ops = collections.Counter(t for t, *_ in prog.ops)
        details = {"ops": dict(ops.most_common()), "op_count": sum(ops.values()), "constants": len(prog.consts),
                   "opset": prog.opset, "compute_precision": "fp32" if precision == "fp32" else "fp16",
                   "io": {"input": {"name": INPUT_NAME, "type": "image (RGB, 0..255)" if spec.layout == "image" else "multiarray",
                                    "dtype": in_dtype},
                          "output": {"name": OUTPUT_NAME, "type": "multiarray",
                                     "dtype": np.dtype(prog.outputs_dtype(OUTPUT_NAME)).name}},
                   "metadata_key": METADATA_KEY, "folded_constant_dequantize": folded,
                   "executed_by": "conversion.mil_interpreter (numpy reference interpreter)"}
        art = Artifact(backend=self.name, precision=precision, file=out_file.name, input=spec,
                       preset=source.preset or "", checkpoint_sha256=source.checkpoint_sha256,
                       source=source.describe(), tools=tool_versions("coremltools"),
                       runtime={"runtime": "Core ML (ML Program)", "minimum_deployment_target": f"{DEPLOYMENT_TARGET} / macOS14",
                                "compute_units": "ALL (fp16: GPU / Neural Engine; fp32: CPU)"},
                       details=details, bytes=file_bytes(out_file), sha256=file_sha256(out_file))
        if precision == "int8":
            q = source.quant_info()
            art.quant_state_sha256, art.quant_scheme = q["sha256"], f"{q['scheme']} ({q['mode']})"
        elif precision == "int8w":
            art.quant_scheme = "int8 weight-only, per-channel symmetric (coremltools linear_quantize_weights)"
        return art

    def load(self, artifact: Artifact, folder: Path) -> Runner:
        return CoreMLRunner(artifact, Path(folder))


def native_available() -> bool:
    """Whether Core ML itself can execute here (macOS with coremltools' native extension)."""
    if platform.system() != "Darwin":
        return False
    try:
        import coremltools.libcoremlpython  # noqa: F401
    except ImportError:
        return False
    return True


class CoreMLRunner(Runner):
    """Runs a package with the reference interpreter; `native` is Core ML itself where it exists."""

    def __init__(self, artifact: Artifact, folder: Path):
        super().__init__(artifact)
        from .mil_interpreter import Program

        self.path = artifact.path(folder)
        self.program = Program(self.path)
        self.native = None
        if native_available():
            import coremltools as ct
            self.native = ct.models.MLModel(str(self.path))
        self.emulated = self.native is None  # what runs here is the interpreter, not Core ML (no speed to time)
        self.executed_by = ["reference interpreter (numpy)"] + ([] if self.emulated else ["Core ML MLModel.predict"])

    def run(self, x: np.ndarray) -> np.ndarray:
        """x in the artifact's value range (0..255 for the image layout), NCHW; returns NCHW float32."""
        self.artifact.input.check(x)
        return self.program.run({INPUT_NAME: x})[OUTPUT_NAME].astype(np.float32)

    def run_nchw(self, x: np.ndarray) -> np.ndarray:
        scale = 255.0 if self.artifact.input.layout == "image" else 1.0
        return self.run(np.ascontiguousarray(x, dtype=np.float32) * np.float32(scale))

    def run_native(self, x: np.ndarray) -> np.ndarray:
        """The same tile through Core ML's MLModel.predict (macOS only); NCHW float in [0, 1]."""
        if self.native is None:
            raise ArtifactError("Core ML itself runs only on macOS; here the reference interpreter executes the package")
        if self.artifact.input.layout == "image":
            from PIL import Image
            feed = Image.fromarray(np.clip(np.rint(x[0].transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8))
        else:
            feed = x.astype(np.dtype(self.artifact.input.dtype))
        return np.asarray(self.native.predict({INPUT_NAME: feed})[OUTPUT_NAME], dtype=np.float32)
