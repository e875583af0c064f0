"""What an artifact is converted from: a checkpoint (fp32/fp16) and, for int8, a quantization state."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from anyir_core import AnyIRError, export_form, load_checkpoint

from .base import InputSpec, file_sha256


class _Unpadded(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_unpadded(x)


@dataclass
class ModelSource:
    checkpoint: str = "default"
    preset: str | None = None
    quant_state: str | None = None
    _fp32: torch.nn.Module | None = field(default=None, repr=False)
    _quantized: dict = field(default_factory=dict, repr=False)
    _prepared: dict = field(default_factory=dict, repr=False)
    memo: dict = field(default_factory=dict, repr=False)  # what a backend keeps between exports of one build

    def eager_model(self) -> torch.nn.Module:
        """The eager AnyIR (FFT fusion, as released): what fp32/fp16 artifacts are checked against."""
        model = load_checkpoint(self.checkpoint, preset=self.preset)
        return _Unpadded(model)

    def describe(self) -> dict:
        return {"checkpoint": str(self.checkpoint), "preset": self.preset, "quant_state": self.quant_state}

    def fp32_model(self) -> torch.nn.Module:
        if self._fp32 is None:
            model = load_checkpoint(self.checkpoint, preset=self.preset)
            from .quantize import checkpoint_sidecar
            checkpoint_sidecar(self.checkpoint)  # a damaged sidecar fails here, before a build has done its work
            self.preset = getattr(model, "preset", self.preset)
            self._fp32 = export_form(model).eval()
        return self._fp32

    @property
    def checkpoint_path(self) -> Path:
        from .quantize import resolve_checkpoint
        return resolve_checkpoint(self.checkpoint)

    @property
    def checkpoint_sha256(self) -> str:
        return file_sha256(self.checkpoint_path)

    def quantized_model(self, spec: InputSpec, fold: bool = True) -> torch.nn.Module:
        """The converted Q/DQ module at the tile size: the int8 artifacts' reference."""
        key = (spec.height, spec.width, fold)
        if key not in self._quantized:  # both forms are converted from one prepared graph (one trace per size)
            import copy

            from .quantize import convert, load_prepared
            self.quant_info()
            self.fp32_model()
            size = (spec.height, spec.width)
            if size not in self._prepared:
                self._prepared[size], _ = load_prepared(self.quant_state, *size, checkpoint=self.checkpoint)
            self._quantized[key] = convert(copy.deepcopy(self._prepared[size]), fold)
        return self._quantized[key]

    def reference(self, precision: str, spec: InputSpec) -> torch.nn.Module:
        """The PyTorch module an artifact of `precision` is checked against (NCHW in and out)."""
        return self.quantized_model(spec) if precision == "int8" else self.fp32_model()

    def quant_info(self) -> dict:
        from .quantize import read_quant_info, state_sha256
        if not self.quant_state:
            raise AnyIRError("int8 needs a quantization state: run `anyir qat` (or `anyir qat --mode ptq`) and pass"
                             " it with --quant-state")
        info = read_quant_info(self.quant_state)
        if info["checkpoint_sha256"] != self.checkpoint_sha256:
            raise AnyIRError(f"quantization state {self.quant_state} was made from another checkpoint than "
                             f"{self.checkpoint}; pass the checkpoint it names ({info['checkpoint']})")
        return {**info, "sha256": state_sha256(self.quant_state)}
