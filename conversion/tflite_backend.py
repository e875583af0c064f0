"""TFLite / LiteRT: `.tflite` through litert-torch from the export form, run with ai_edge_litert's
interpreter (XNNPACK is its default CPU delegate).

Here: fp32, with NCHW or NHWC (Android bitmaps are interleaved) input and output. fp16 weights and a
full-integer int8 file carried from the QAT state are issue 5's open work and are refused by name.
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


@register
class TFLiteBackend(Backend):
    name = "tflite"
    suffix = ".tflite"
    precisions = ("fp32",)
    layouts = ("NCHW", "NHWC")
    not_yet = {p: f"tflite {p} is not built yet (issue 5: fp16 weights and full-integer int8 from the QAT state);"
                  " export fp32, or use executorch for int8" for p in ("fp16", "int8")}

    def available(self) -> str | None:
        try:
            import ai_edge_litert.interpreter  # noqa: F401
            import litert_torch  # noqa: F401
        except ImportError as e:
            return f"litert-torch / ai-edge-litert are not installed ({e}); pip install litert-torch==0.10.0"
        return None

    def export(self, source, spec: InputSpec, precision: str, out_file: Path) -> Artifact:
        import litert_torch

        self.check(precision, spec.layout)
        net = source.fp32_model()
        module = _NHWC(net) if spec.layout == "NHWC" else net
        x = torch.rand(spec.shape)
        out_file = Path(out_file)
        # litert-torch prints its progress on stdout; keep stdout for results (`anyir build` prints a table)
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr), \
                tempfile.TemporaryDirectory(dir=out_file.parent) as tmp:
            warnings.simplefilter("ignore")
            edge = litert_torch.convert(module.eval(), (x,))
            staged = Path(tmp) / out_file.name
            edge.export(str(staged))
            _atomic_write(out_file, lambda t: Path(t).write_bytes(staged.read_bytes()))
        ops = collections.Counter(op["op_name"] for op in _interpreter(out_file, 1)._get_ops_details())
        return Artifact(backend=self.name, precision=precision, file=out_file.name, input=spec,
                        preset=source.preset or "", checkpoint_sha256=source.checkpoint_sha256,
                        source=source.describe(), tools=tool_versions("litert-torch", "ai-edge-litert"),
                        runtime={"runtime": "LiteRT / TensorFlow Lite interpreter", "delegate": "XNNPACK (CPU default)"},
                        details={"ops": dict(ops.most_common()), "op_count": sum(ops.values())},
                        bytes=file_bytes(out_file), sha256=file_sha256(out_file))

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

    def run(self, x: np.ndarray) -> np.ndarray:
        self.artifact.input.check(x)
        self.interp.set_tensor(self.inp, np.ascontiguousarray(x, dtype=np.float32))
        self.interp.invoke()
        return self.interp.get_tensor(self.out).copy()
