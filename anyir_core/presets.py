"""Architecture presets, kept as data (timm-style registry)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from .errors import AnyIRError


@dataclass(frozen=True)
class AnyIRConfig:
    dim: int = 28
    num_blocks: tuple[int, int, int, int] = (3, 5, 5, 7)
    num_refinement_blocks: int = 4
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.0
    bias: bool = False
    layernorm_type: str = "WithBias"  # or "BiasFree", as in the released code
    inp_channels: int = 3
    out_channels: int = 3

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Preset:
    name: str
    config: AnyIRConfig
    description: str
    tags: tuple[str, ...] = field(default=())


_PRESETS: dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    _PRESETS[preset.name] = preset
    return preset


register_preset(Preset(
    "anyir", AnyIRConfig(),
    "The released AnyIR (dim 28, blocks 3/5/5/7, 4 refinement blocks): 5.74 M parameters.",
    ("released",),
))
register_preset(Preset(
    "anyir-dim32", AnyIRConfig(dim=32, num_blocks=(4, 6, 6, 8)),
    "The larger released variant (dim 32, blocks 4/6/6/8): 8.51 M parameters.",
    ("released",),
))
register_preset(Preset(
    "anyir-mobile", AnyIRConfig(dim=16, num_blocks=(1, 2, 2, 3), num_refinement_blocks=1),
    "A phone-first AnyIR (dim 16, blocks 1/2/2/3, 1 refinement block) that trains on a CPU in an hour.",
    ("mobile",),
))
register_preset(Preset(
    "anyir-tiny", AnyIRConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1),
    "A toy AnyIR for fast tests: every block type, 0.13 M parameters.",
    ("test",),
))


def list_presets() -> list[str]:
    return list(_PRESETS)


def get_preset(name: str) -> Preset:
    try:
        return _PRESETS[name]
    except KeyError:
        raise AnyIRError(
            f"unknown preset {name!r}; choose one of: {', '.join(_PRESETS)}"
        ) from None


def resolve_config(preset: str = "anyir", **overrides) -> AnyIRConfig:
    cfg = get_preset(preset).config
    bad = [k for k in overrides if k not in AnyIRConfig.__dataclass_fields__]
    if bad:
        raise AnyIRError(f"unknown model option(s) {', '.join(bad)} for preset {preset!r}")
    for key in ("num_blocks", "heads"):
        if key in overrides:
            overrides[key] = tuple(overrides[key])
    if "LayerNorm_type" in overrides:  # the released keyword
        overrides["layernorm_type"] = overrides.pop("LayerNorm_type")
    cfg = replace(cfg, **overrides)
    _validate(cfg)
    return cfg


def _validate(cfg: AnyIRConfig) -> None:
    if cfg.layernorm_type not in ("WithBias", "BiasFree"):
        raise AnyIRError(f"layernorm_type must be 'WithBias' or 'BiasFree', not {cfg.layernorm_type!r}")
    for level, heads in enumerate(cfg.heads):
        width = cfg.dim * 2 ** level
        # Each block splits channels into halves (attention / gate); decoder level 1 and
        # refinement run at 2*dim with heads[0], which the check at level 0 covers.
        if width % 2 or (width // 2) % heads:
            raise AnyIRError(
                f"dim {cfg.dim} does not fit heads {cfg.heads}: level {level + 1} has {width} channels,"
                f" half of which must divide into {heads} heads"
            )
