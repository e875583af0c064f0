"""What `anyir info` prints: parameters, MACs, input constraints and the export form's op inventory."""
from __future__ import annotations

from collections import Counter

import torch

from .errors import AnyIRError
from .model import SIZE_MULTIPLE, AnyIR
from .presets import get_preset, resolve_config

MAX_SIDE = 16384
INVENTORY_SIZE = 64  # op types and counts do not depend on the (static) size; 64x64 exports fast


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: torch.nn.Module, size: tuple[int, int]) -> int:
    """Multiply-accumulates of one forward pass at `size`, from torch's FLOP counter (MACs = FLOPs / 2).

    Like the released numbers (fvcore), this counts convolutions and matmuls; element-wise ops and the
    FFT are not counted."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    # on the meta device: the counter needs shapes, not numbers, so any size costs no memory and no time
    # (`anyir info --size 16384 16384` ran the model on 805 M inputs before)
    probe = copy.deepcopy(model).to("meta").eval()
    x = torch.zeros(1, 3, *size, device="meta")
    with FlopCounterMode(display=False) as counter:
        probe(x)
    return counter.get_total_flops() // 2


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    h, w = size
    if h < 1 or w < 1:
        raise AnyIRError(f"size {h}x{w}: height and width must be positive")
    if max(h, w) > MAX_SIDE:
        raise AnyIRError(f"size {h}x{w}: sides over {MAX_SIDE} px are restored in tiles, not whole")
    return h, w


def padded_size(size: tuple[int, int]) -> tuple[int, int]:
    return tuple(-(-s // SIZE_MULTIPLE) * SIZE_MULTIPLE for s in size)


def export_op_inventory(model: AnyIR, size: int = INVENTORY_SIZE) -> Counter:
    """Counts of ATen ops in `torch.export.export(export_form(model), strict=True)` at size x size."""
    from .export import export_form

    ep = torch.export.export(export_form(model), (torch.zeros(1, 3, size, size),), strict=True)
    ops = Counter()
    for node in ep.graph.nodes:
        if node.op == "call_function":
            ops[str(node.target).replace("aten.", "").replace(".default", "")] += 1
    return ops


def describe(preset: str, size: tuple[int, int] = (224, 224), checkpoint: str | None = None,
             show_ops: bool = True) -> str:
    size = check_size(tuple(size))
    if checkpoint:
        from .checkpoint import load_checkpoint
        model = load_checkpoint(checkpoint)
        preset = getattr(model, "preset", preset)
    else:
        model = AnyIR(resolve_config(preset))
    cfg = model.config
    run = padded_size(size)
    macs = count_macs(model, run)
    lines = [
        f"preset        {preset}: {get_preset(preset).description}" if not checkpoint else f"checkpoint    {checkpoint} (preset {preset})",
        f"config        dim {cfg.dim}, blocks {list(cfg.num_blocks)}, refinement {cfg.num_refinement_blocks},"
        f" heads {list(cfg.heads)}, FFN x{cfg.ffn_expansion_factor:g}, bias {cfg.bias}, LayerNorm {cfg.layernorm_type}",
        f"parameters    {count_parameters(model):,}",
        f"state dict    {len(model.state_dict())} entries",
        f"MACs          {macs / 1e9:.2f} G at {size[0]}x{size[1]}"
        + (f" (run at {run[0]}x{run[1]} after padding)" if run != size else ""),
        f"input         float32 RGB in [0, 1], NCHW; H and W padded (reflect) to multiples of {SIZE_MULTIPLE}"
        " and cropped back; the export form takes multiples of 8 only",
    ]
    if show_ops:
        ops = export_op_inventory(model)
        lines.append(f"export form   {sum(ops.values())} ops, {len(ops)} types (torch.export, strict):")
        lines += [f"  {name:<28}{n:>6}" for name, n in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))]
    return "\n".join(lines)
