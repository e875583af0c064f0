"""TFLite / LiteRT: `.tflite` through litert-torch from the export form, run with ai_edge_litert's
interpreter (XNNPACK is its default CPU delegate). NCHW or NHWC input and output (Android bitmaps are
interleaved).

- fp32: the export form as is.
- fp16: weights of the convolutions stored as float16 (litert-torch's fp16 recipe: float16 constants +
  DEQUANTIZE, fp32 compute); half the size, checked against eager fp32 (>= 45 dB).
- int8: full-integer, converted from the QAT state's Q/DQ graph (`convert_pt2e(fold_quantize=False)`), so
  the int8 weights, their per-channel scales and every activation scale in the file are the QAT state's
  own; the convolutions take and give int8 tensors. litert-torch 0.10 applies no quantizer of its own
  here: a static `PT2EQuantizer` in its QuantConfig only switches the converter to STATIC Q/DQ lowering.
  The model's input and output become int8 (scale 1/255, zero point -128: the 8-bit pixel minus 128); the
  record carries their quantization and the runner converts float tiles the way an app does.
"""
from __future__ import annotations

import collections
import contextlib
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from anyir_core.checkpoint import _atomic_write

from .base import (Artifact, ArtifactError, Backend, InputSpec, Runner, file_bytes, file_sha256,
                   register, tool_versions)


class _NHWC(torch.nn.Module):
    """NHWC in and out around the NCHW export form (the transposes sit at the graph's edges only)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def _interpreter(path: Path, threads: int | None = None):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path), num_threads=threads or torch.get_num_threads())


SIGNATURE = ("restore", "image", "restored")  # signature key, input name, output name
METADATA_NAME = "anyir_mobile"  # the Model.metadata entry holding the JSON an app reads


def float_means(model) -> int:
    """Rewrite every int8 MEAN whose only reader is a DEQUANTIZE as DEQUANTIZE then a float MEAN; returns
    how many.

    The reference computes the gate's spatial mean in float (the per-image statistics stay float), but the
    converter carries the int8 input's scale through MEAN (a same-scale op to it), so the mean was rounded
    to a step of ~0.02 before use. Measured on the default build's state: the worst haze tile's agreement
    with the reference went from 40.0 to 40.3 dB."""
    from ai_edge_litert import schema_py_generated as schema

    graph = model.subgraphs[0]
    kinds = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    readers: dict[int, list] = collections.defaultdict(list)
    for op in graph.operators:
        for t in op.inputs:
            readers[t].append(op)
    if schema.BuiltinOperator.DEQUANTIZE not in kinds:
        return 0
    dequantize = kinds.index(schema.BuiltinOperator.DEQUANTIZE)
    rewritten = 0
    for op in graph.operators:
        if kinds[op.opcodeIndex] != schema.BuiltinOperator.MEAN:
            continue
        x, axes = op.inputs[0], op.inputs[1]
        users = readers[op.outputs[0]]
        if graph.tensors[x].type != schema.TensorType.INT8 or len(users) != 1 or users[0].opcodeIndex != dequantize:
            continue
        deq = users[0]
        t = schema.TensorT()
        t.shape, t.type, t.buffer = list(graph.tensors[x].shape), schema.TensorType.FLOAT32, 0
        t.name = (graph.tensors[x].name or b"") + b"/dequantized"
        graph.tensors.append(t)
        xf = len(graph.tensors) - 1
        # the MEAN's slot dequantizes its input; the DEQUANTIZE's slot (later in order) takes the float mean
        mean_code, mean_options = op.opcodeIndex, (op.builtinOptionsType, op.builtinOptions)
        op.opcodeIndex, op.inputs, op.outputs = dequantize, [x], [xf]
        op.builtinOptionsType, op.builtinOptions = deq.builtinOptionsType, deq.builtinOptions
        deq.opcodeIndex, deq.inputs = mean_code, [xf, axes]
        deq.builtinOptionsType, deq.builtinOptions = mean_options
        rewritten += 1
    return rewritten


def annotate(path: Path, meta: dict) -> int:
    """Name the signature (restore: image -> restored) and add `meta` as JSON under Model.metadata
    "anyir_mobile", so an Android app can read range, layout and tile size from the file itself; int8
    means become float ones (float_means). Returns how many means were rewritten."""
    import json

    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu
    model = fbu.read_model_from_bytearray(bytearray(path.read_bytes()))
    if any(b.offset for b in model.buffers or []):
        raise ArtifactError(f"{path}: buffers stored outside the flatbuffer; cannot annotate it here")
    means = float_means(model)
    key, inp, out = SIGNATURE
    sig = model.signatureDefs[0]
    sig.signatureKey = key
    sig.inputs[0].name, sig.outputs[0].name = inp, out
    buf = schema.BufferT()
    buf.data = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    model.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_NAME] + [entry]
    tmp = path.with_name(path.name + ".annotated")
    tmp.write_bytes(bytes(fbu.convert_object_to_bytearray(model)))
    tmp.replace(path)  # a new file: nothing that still maps the old one sees it change
    return means


def read_metadata(path: Path) -> dict | None:
    """The anyir_mobile JSON of a .tflite file, or None."""
    import json

    from ai_edge_litert.tools import flatbuffer_utils as fbu
    model = fbu.read_model_from_bytearray(bytearray(Path(path).read_bytes()))
    for m in model.metadata or []:
        name = m.name.decode() if isinstance(m.name, bytes) else m.name
        if name == METADATA_NAME:
            return json.loads(bytes(np.asarray(model.buffers[m.buffer].data, dtype=np.uint8)).decode())
    return None


def io_quantization(interp) -> dict:
    """dtype, scale and zero point of the model's input and output tensors."""
    out = {}
    for name, det in (("input", interp.get_input_details()[0]), ("output", interp.get_output_details()[0])):
        scale, zp = det.get("quantization", (0.0, 0))
        out[name] = {"dtype": np.dtype(det["dtype"]).name, "scale": float(scale), "zero_point": int(zp)}
    return out


def conv_tensor_types(interp) -> list[dict]:
    """For each CONV_2D / DEPTHWISE_CONV_2D: dtypes of activation in, weight, bias, activation out, and
    whether the weight is quantized per channel. What a test reads to prove a file is really int8."""
    td = {t["index"]: t for t in interp.get_tensor_details()}
    rows = []
    for op in interp._get_ops_details():
        if op["op_name"] not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        ins = [td[i] for i in op["inputs"] if i >= 0]
        wq = ins[1].get("quantization_parameters", {})
        rows.append({"op": op["op_name"], "input": np.dtype(ins[0]["dtype"]).name,
                     "weight": np.dtype(ins[1]["dtype"]).name,
                     "bias": np.dtype(ins[2]["dtype"]).name if len(ins) > 2 else None,
                     "output": np.dtype(td[op["outputs"][0]]["dtype"]).name,
                     "weight_scales": len(wq.get("scales", [])), "weight_name": ins[1]["name"]})
    return rows


def float16_weights(interp) -> int:
    """How many float16 constants feed a DEQUANTIZE op (the fp16 file's weights)."""
    td = {t["index"]: t for t in interp.get_tensor_details()}
    return sum(1 for op in interp._get_ops_details() if op["op_name"] == "DEQUANTIZE"
               and np.dtype(td[op["inputs"][0]]["dtype"]) == np.float16)


@register
class TFLiteBackend(Backend):
    name = "tflite"
    suffix = ".tflite"
    precisions = ("fp32", "fp16", "int8")
    layouts = ("NCHW", "NHWC")

    def available(self) -> str | None:
        try:
            import ai_edge_litert.interpreter  # noqa: F401
            import litert_torch  # noqa: F401
        except ImportError as e:
            return f"litert-torch / ai-edge-litert are not installed ({e}); pip install litert-torch==0.10.0"
        return None

    def _module_and_config(self, source, spec: InputSpec, precision: str):
        if precision == "int8":
            from litert_torch.quantize import pt2e_quantizer
            from litert_torch.quantize.quant_config import QuantConfig
            net = source.quantized_model(spec, fold=False)
            static = pt2e_quantizer.PT2EQuantizer().set_global(
                pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
            return net, QuantConfig(pt2e_quantizer=static)
        net = source.fp32_model()
        if precision == "fp16":
            from litert_torch.generative.quantize import quant_recipes
            return net, quant_recipes.full_fp16_recipe()
        return net, None

    def export(self, source, spec: InputSpec, precision: str, out_file: Path) -> Artifact:
        import litert_torch

        self.check(precision, spec.layout)
        net, quant_config = self._module_and_config(source, spec, precision)
        if precision != "int8":
            net.eval()  # (the Q/DQ module is an exported graph: already in eval form, and refuses .eval())
        module = _NHWC(net) if spec.layout == "NHWC" else net
        module.training = False
        x = torch.rand(spec.shape)
        out_file = Path(out_file)
        # litert-torch prints its progress on stdout; keep stdout for results (`anyir build` prints a table)
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr), \
                tempfile.TemporaryDirectory(dir=out_file.parent) as tmp:
            warnings.simplefilter("ignore")
            edge = litert_torch.convert(module, (x,), quant_config=quant_config)
            staged = Path(tmp) / out_file.name
            edge.export(str(staged))
            io = io_quantization(_interpreter(staged, 1))
            means = annotate(staged, {"format": "anyir-mobile/tflite-metadata/1", "model": "AnyIR", "preset": source.preset,
                              "precision": precision, "layout": spec.layout, "shape": list(spec.shape),
                              "tile": [spec.height, spec.width], "value_range": list(spec.value_range),
                              "color_order": spec.color_order, "io": io, "signature": list(SIGNATURE),
                              "checkpoint_sha256": source.checkpoint_sha256})
            _atomic_write(out_file, lambda t: Path(t).write_bytes(staged.read_bytes()))
        interp = _interpreter(out_file, 1)
        ops = collections.Counter(op["op_name"] for op in interp._get_ops_details())
        convs = conv_tensor_types(interp)
        details = {"ops": dict(ops.most_common()), "op_count": sum(ops.values()), "io": io,
                   "signature": interp.get_signature_list(), "metadata": METADATA_NAME,
                   "float16_constants": float16_weights(interp), "int8_means_made_float": means,
                   "conv_types": dict(collections.Counter(f"{c['op']} {c['input']}x{c['weight']}->{c['output']}"
                                                          for c in convs))}
        if io["input"]["dtype"] != "float32":
            spec = InputSpec(**{**spec.__dict__, "dtype": io["input"]["dtype"]})
        art = Artifact(backend=self.name, precision=precision, file=out_file.name, input=spec,
                       preset=source.preset or "", checkpoint_sha256=source.checkpoint_sha256,
                       source=source.describe(), tools=tool_versions("litert-torch", "ai-edge-litert"),
                       runtime={"runtime": "LiteRT / TensorFlow Lite interpreter (ai-edge-litert >= 2.3)",
                                "delegate": "XNNPACK (CPU default)"},
                       details=details, bytes=file_bytes(out_file), sha256=file_sha256(out_file))
        if precision == "int8":
            q = source.quant_info()
            art.quant_state_sha256, art.quant_scheme = q["sha256"], f"{q['scheme']} ({q['mode']})"
        return art

    def load(self, artifact: Artifact, folder: Path) -> Runner:
        return _TFLiteRunner(artifact, Path(folder))


class _TFLiteRunner(Runner):
    def __init__(self, artifact: Artifact, folder: Path):
        super().__init__(artifact)
        path = artifact.path(folder)
        try:
            self.interp = _interpreter(path)
            self.interp.allocate_tensors()
        except Exception as e:
            raise ArtifactError(f"{path}: not a loadable TFLite model ({str(e).splitlines()[0][:120]})") from None
        self.inp = self.interp.get_input_details()[0]["index"]
        self.out = self.interp.get_output_details()[0]["index"]
        self.io = io_quantization(self.interp)

    def run(self, x: np.ndarray) -> np.ndarray:
        self.artifact.input.check(x)
        i, o = self.io["input"], self.io["output"]
        if i["dtype"] == "float32":
            self.interp.set_tensor(self.inp, np.ascontiguousarray(x, dtype=np.float32))
        else:  # an int8 model: quantize the tile as the app does (8-bit pixel - 128 for scale 1/255, zp -128)
            info = np.iinfo(i["dtype"])
            q = np.clip(np.round(x / i["scale"]) + i["zero_point"], info.min, info.max)
            self.interp.set_tensor(self.inp, np.ascontiguousarray(q.astype(i["dtype"])))
        self.interp.invoke()
        y = self.interp.get_tensor(self.out)
        if o["dtype"] == "float32":
            return y.copy()
        return ((y.astype(np.float32) - o["zero_point"]) * o["scale"]).astype(np.float32)
