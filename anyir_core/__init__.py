"""anyir_core: the AnyIR model (eager and export form), data, training and metrics.

Knows nothing of mobile runtimes: imports torch, numpy and pillow only.
"""
from importlib import metadata as _metadata

from .errors import AnyIRError, CheckpointError, ImageError
from .presets import AnyIRConfig, get_preset, list_presets, resolve_config
from .model import AnyIR, pad_to_multiple, SIZE_MULTIPLE

try:
    __version__ = _metadata.version("anyir-mobile")
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+source"


def create_model(preset: str = "anyir", use_fft: bool = True, **overrides) -> AnyIR:
    """Build an AnyIR from a registered preset; keyword overrides change single fields."""
    return AnyIR(resolve_config(preset, **overrides), use_fft=use_fft)


from .export import export_form  # noqa: E402
from .checkpoint import load_checkpoint, save_checkpoint  # noqa: E402

__all__ = [
    "AnyIR", "AnyIRConfig", "AnyIRError", "CheckpointError", "ImageError", "SIZE_MULTIPLE",
    "create_model", "export_form", "get_preset", "list_presets", "load_checkpoint", "pad_to_multiple",
    "resolve_config", "save_checkpoint",
]
