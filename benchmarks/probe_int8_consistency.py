"""How consistent is an int8 graph with itself? The ceiling for "artifact vs fake-quantized reference".

Runs the quantization state's PyTorch Q/DQ graph on the held-out verification tiles twice: as is, and with
the input of every quantize op (or of one group of them) multiplied by (1 + nudge), a few float ulps. A
faithful runtime differs from PyTorch by float rounding of that order, so the PSNR between the two outputs
is what any runtime can be expected to reach against the reference; a graph whose rounding decisions
cascade shows it here, without any runtime.

    python benchmarks/probe_int8_consistency.py --quant-state runs/qat [--tasks haze,noise25] [--groups]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anyir_core.metrics import psnr_float  # noqa: E402
from conversion.base import InputSpec  # noqa: E402
from conversion.source import ModelSource  # noqa: E402
from conversion.verify import DEFAULT_TASKS, _nchw, verification_set  # noqa: E402
from probe_int8_sensitivity import _ops, groups  # noqa: E402  (same folder)


def _qt():
    return _ops()[0]


class Nudged(torch.fx.Interpreter):
    """The graph with the input of the named quantize ops scaled by (1 + nudge)."""

    def __init__(self, gm, names: set[str], nudge: float):
        super().__init__(gm)
        self.names, self.nudge = names, nudge

    def run_node(self, n):
        if n.op == "call_function" and n.target is _qt() and n.name in self.names:
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            return n.target(args[0] * (1 + self.nudge), *args[1:], **kwargs)
        return super().run_node(n)


def consumer_groups(gm) -> dict[str, set[str]]:
    """Quantize ops grouped by the module type of what reads them (via their dequantize)."""
    return groups(gm, "consumer")


@torch.no_grad()
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--quant-state", required=True)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    ap.add_argument("--nudge", type=float, default=2.0 ** -21)
    ap.add_argument("--groups", action="store_true", help="also nudge each consumer group alone (first tile)")
    args = ap.parse_args(argv)
    src = ModelSource(args.checkpoint, quant_state=args.quant_state)
    gm = src.quantized_model(InputSpec(args.size, args.size))
    every = {n.name for n in gm.graph.nodes if n.op == "call_function" and n.target is _qt()}
    tasks = tuple(args.tasks.split(","))
    print(f"{len(every)} quantize ops; nudge {args.nudge:.3g}; PSNR of the nudged graph's output vs its own (dB)")
    first = None
    for name, task, deg, _ in verification_set(args.size, args.size, tasks):
        x = torch.from_numpy(_nchw(deg))
        base = gm(x).numpy()
        out = Nudged(gm, every, args.nudge).run(x).numpy()
        diff = np.abs(out - base).max(axis=1)
        print(f"{name:<10}{task:<9}{psnr_float(out, base):7.1f}   pixels changed {100 * (diff > 0).mean():5.1f}%,"
              f" by > 0.01: {100 * (diff > 0.01).mean():5.1f}%")
        first = first or (x, base, f"{name} {task}")
    if args.groups and first:
        x, base, label = first
        print(f"each consumer group nudged alone, {label}:")
        for key, names in sorted(consumer_groups(gm).items(), key=lambda kv: -len(kv[1])):
            print(f"  {psnr_float(Nudged(gm, names, args.nudge).run(x).numpy(), base):7.1f}  {len(names):4d} feeding {key}")


if __name__ == "__main__":
    main()
