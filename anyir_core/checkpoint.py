"""Loading and saving AnyIR weights.

Reads: the project's safetensors (+ JSON sidecar), official PyTorch Lightning `.ckpt` files (keys under
`state_dict` with a `net.` prefix) and plain `.pth`/`.pt` state dicts, always with `weights_only=True`.
Writes: safetensors with the model's preset and config in the file's own metadata (so the file alone
is enough) plus a JSON sidecar (recipe, metrics), each written to a temp file and renamed into place.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from dataclasses import fields
from pathlib import Path

import torch

from .errors import AnyIRError, CheckpointError
from .model import AnyIR
from .presets import AnyIRConfig, list_presets, resolve_config
from .presets import _validate as validate_config

WEIGHTS_DIR = Path(__file__).parent / "weights"
BUILTIN = {"default": WEIGHTS_DIR / "default.safetensors"}
_PREFIXES = ("net.", "model.", "module.")


def _describe(keys, limit: int = 3) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def _read_torch_file(path: Path) -> dict:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and EOF errors all mean the same thing to the user
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({first[:160]})") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "params_ema", "params", "model", "net"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: holds no state dict (expected a dict of tensors, or one under 'state_dict')")
    return obj


def _strip_prefix(state: dict) -> dict:
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items()}
    return state


def read_safetensors(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise CheckpointError(f"{path}: truncated or not a safetensors file ({str(e).splitlines()[0][:120]})") from None
    return state, meta


def _mismatch(model: AnyIR, state: dict) -> str | None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                 if k in state and state[k].shape != v.shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing: {_describe(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected: {_describe(unexpected)}")
    if misshaped:
        parts.append(f"{len(misshaped)} mis-shaped (file vs model): {_describe(misshaped)}")
    return "; ".join(parts) or None


def _guess_preset(state: dict) -> str | None:
    for name in list_presets():
        if _mismatch(_shapes_only(resolve_config(name)), state) is None:
            return name
    return None


def _shapes_only(config: AnyIRConfig, use_fft: bool = True) -> AnyIR:
    """The model with parameters on the meta device: its state-dict shapes, no memory (a file's metadata can
    describe a model of any size; it is built for real only once its shapes match the file's tensors)."""
    with torch.device("meta"):
        return AnyIR(config, use_fft=use_fft)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # a preset names files and bundles: no paths


def _config_from_metadata(path: Path, text: str) -> AnyIRConfig:
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError(f"a JSON {type(raw).__name__}, not an object")
        config = AnyIRConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
        for f in fields(AnyIRConfig):
            v, default = getattr(config, f.name), f.default
            least = 0 if f.name in ("num_blocks", "num_refinement_blocks") else 1  # heads, dim, channels: >= 1
            if isinstance(default, tuple):
                ok = isinstance(v, tuple) and len(v) == len(default) and all(type(x) is int and x >= least for x in v)
            elif isinstance(default, bool) or isinstance(default, str):
                ok = type(v) is type(default)
            elif isinstance(default, int):
                ok = type(v) is int and v >= least
            else:
                ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
            if not ok:
                raise ValueError(f"{f.name} = {v!r}")
        validate_config(config)
    except (ValueError, TypeError, AnyIRError) as e:
        raise CheckpointError(f"{path}: its metadata holds no valid model config ({str(e)[:120]})") from None
    return config


def _check_finite(path: Path, state: dict) -> None:
    for k, v in state.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"{path}: tensor {k} holds non-finite values (inf or NaN): a damaged file")


def load_checkpoint(path: str | os.PathLike = "default", preset: str | None = None,
                    use_fft: bool = True) -> AnyIR:
    """Load weights into a ready AnyIR in eval mode (images: float RGB in [0, 1], NCHW).

    `path` is a file or the name of a built-in checkpoint ("default"). `preset` is read from the
    file's metadata when it carries one, guessed from the tensor shapes otherwise.
    """
    if str(path) in BUILTIN:
        path = BUILTIN[str(path)]
        if not path.exists():
            raise CheckpointError(f"the built-in checkpoint {path.name} is not installed; train one with `anyir train`")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    config = None
    if path.suffix == ".safetensors":
        state, meta = read_safetensors(path)
        if "config" in meta and preset is None:
            config = _config_from_metadata(path, meta["config"])
            preset = meta.get("preset")
            if preset is not None and not _NAME.match(preset):
                raise CheckpointError(f"{path}: its metadata names the preset {preset[:40]!r}, not a plain name "
                                      "(letters, digits, . _ -)")
    else:
        state = _read_torch_file(path)
    state = _strip_prefix(state)
    if config is None:
        if preset is None:
            preset = _guess_preset(state) or "anyir"
        config = resolve_config(preset)
    problem = _mismatch(_shapes_only(config, use_fft), state)
    if problem:
        raise CheckpointError(f"{path.name} does not fit preset {preset!r}: {problem}")
    _check_finite(path, state)
    model = AnyIR(config, use_fft=use_fft)
    model.load_state_dict(state)
    model.preset = preset
    return model.eval()


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 is for the temp file, not the result
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(model: AnyIR, path: str | os.PathLike, preset: str, info: dict | None = None) -> Path:
    """Write `model` as safetensors (preset + config in its metadata) and a JSON sidecar with `info`."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"preset": preset, "config": json.dumps(model.config.to_dict()), "format": "anyir-mobile/1"}
    try:
        _atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))
    except SafetensorError as e:  # its I/O errors (a full disk) are not OSErrors
        raise CheckpointError(f"{path}: could not be written ({str(e).splitlines()[0][:160]})") from None
    sidecar = {"preset": preset, "config": model.config.to_dict(), **(info or {})}
    _atomic_write(path.with_suffix(".json"),
                  lambda tmp: Path(tmp).write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n"))
    return path
