"""Where does the int8 error come from? Per-group sensitivity of a quantization state.

Runs the state's PyTorch Q/DQ graph on held-out verification tiles with every activation quantizer
active, with none (weights-only int8), and with one group of activation quantizers left float at a time
(groups: the module type that reads the quantized tensor, or, with --by producer, the one that writes it).
Prints the PSNR of each output against the float export form (images in [0, 1]): the groups whose
bypass lifts it most are where int8 loses the most.

    python benchmarks/probe_int8_sensitivity.py --quant-state runs/qat [--tasks haze,noise15] [--by producer]
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anyir_core import export_form, load_checkpoint  # noqa: E402
from anyir_core.metrics import psnr_float  # noqa: E402
from conversion.quantize import load_quantized  # noqa: E402
from conversion.verify import _nchw, verification_set  # noqa: E402


def _ops():
    import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401  (registers quantized_decomposed)
    qd = torch.ops.quantized_decomposed
    return qd.quantize_per_tensor.default, qd.dequantize_per_tensor.default


class Bypassed(torch.fx.Interpreter):
    """The Q/DQ graph with the named activation quantize ops (and their dequantizes) left out."""

    def __init__(self, gm, names: set[str]):
        super().__init__(gm)
        self.names = names
        self.q, self.dq = _ops()

    def run_node(self, n):
        if n.op == "call_function" and n.target is self.q and n.name in self.names:
            return ("float", self.fetch_args_kwargs_from_env(n)[0][0])
        if n.op == "call_function" and n.target is self.dq:
            src = self.env[n.args[0]] if isinstance(n.args[0], torch.fx.Node) else None
            if isinstance(src, tuple) and src and src[0] == "float":
                return src[1]
        return super().run_node(n)


def _owner(node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "top"
    path, cls = list(stack.values())[-1]
    return str(cls).split(".")[-1].strip("'>")


def groups(gm, by: str) -> dict[str, set[str]]:
    q, _ = _ops()
    out = collections.defaultdict(set)
    for n in gm.graph.nodes:
        if n.op == "call_function" and n.target is q:
            if by == "consumer":
                key = "+".join(sorted({_owner(u) for d in n.users for u in d.users}))
            else:
                src = n.args[0]
                key = f"{_owner(src)}.{getattr(src.target, '__name__', src.target)}" if isinstance(src, torch.fx.Node) else "input"
            out[key].add(n.name)
    return dict(out)


@torch.no_grad()
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="default: the state's own checkpoint")
    ap.add_argument("--quant-state", required=True)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--tasks", default="haze,noise15")
    ap.add_argument("--by", choices=("consumer", "producer"), default="consumer")
    args = ap.parse_args(argv)
    gm, info = load_quantized(args.quant_state, args.size, args.size, args.checkpoint)
    fp = export_form(load_checkpoint(args.checkpoint or info["checkpoint"], preset=info["preset"]))
    tiles = [(f"{name} {task}", torch.from_numpy(_nchw(deg)), clean)
             for name, task, deg, clean in verification_set(args.size, args.size, tuple(args.tasks.split(",")))]
    refs = [fp(x).numpy() for _, x, _ in tiles]

    def score(names: set[str]) -> list[float]:
        return [psnr_float(Bypassed(gm, names).run(x).numpy(), r) for (_, x, _), r in zip(tiles, refs)]

    every = set().union(*groups(gm, args.by).values())
    header = "  ".join(f"{label:>14}" for label, _, _ in tiles)
    print(f"PSNR vs the float export form (dB); {len(every)} activation quantizers\n{'':<52}{header}")

    def row(label, vals):
        print(f"{label:<52}" + "  ".join(f"{v:14.2f}" for v in vals) + f"   mean {np.mean(vals):6.2f}")

    row("all int8", score(set()))
    row("weights only (every activation float)", score(every))
    for key, names in sorted(groups(gm, args.by).items(), key=lambda kv: -len(kv[1])):
        row(f"  float: {len(names):4d} {key}"[:52], score(names))


if __name__ == "__main__":
    main()
