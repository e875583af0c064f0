"""ExecuTorch: `.pte` programs with the whole graph delegated to XNNPACK, fp32 and int8.

Export: torch.export (static tile, batch 1) -> to_edge_transform_and_lower(XnnpackPartitioner) ->
to_executorch. Run: `executorch.runtime`. Profile: ETDump events read by the devtools Inspector,
including XNNPACK's own per-operator events inside the delegate call.
"""
from __future__ import annotations

import collections
import os
import re
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from anyir_core.checkpoint import _atomic_write

from .base import (Artifact, ArtifactError, Backend, BackendUnavailable, InputSpec, Runner, file_bytes, file_sha256,
                   register, tool_versions)

_MAC_OPS = ("convolution", "conv2d", "bmm", "mm", "addmm", "linear", "matmul")


def _node_macs(node) -> int:
    """MACs of a conv / matmul node from its tensors' shapes (0 for everything else)."""
    name = str(node.target)
    if not any(k in name for k in _MAC_OPS):
        return 0
    out = node.meta.get("val")
    if out is None or not hasattr(out, "shape"):
        return 0
    args = [a.meta.get("val") for a in node.args if hasattr(a, "meta")]
    if "conv" in name and len(args) >= 2:
        w = args[1]
        return int(np.prod(out.shape)) * int(np.prod(w.shape[1:]))
    if "bmm" in name or "mm" in name or "matmul" in name:
        return int(np.prod(out.shape)) * int(args[0].shape[-1])
    return 0


def delegation_report(lowered_gm, total_macs: int) -> dict:
    """What XNNPACK took: subgraphs, nodes, ops left outside and the share of the MACs delegated."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(lowered_gm)
    outside = {op: b.non_delegated for op, b in info.delegation_by_operator.items() if b.non_delegated}
    inside = {op: b.delegated for op, b in info.delegation_by_operator.items() if b.delegated}
    macs_outside = sum(_node_macs(n) for n in lowered_gm.graph.nodes if n.op == "call_function")
    return {
        "delegate": "XnnpackBackend",
        "subgraphs": info.num_delegated_subgraphs,
        "nodes_delegated": info.num_delegated_nodes,
        "nodes_outside": info.num_non_delegated_nodes,
        "ops_outside": outside,
        "ops_delegated": inside,
        "macs_total": total_macs,
        "macs_outside": macs_outside,
        "mac_share_delegated": 1.0 - macs_outside / total_macs if total_macs else None,
    }


def count_graph_macs(gm) -> int:
    return sum(_node_macs(n) for n in gm.graph.nodes if n.op == "call_function")


@register
class ExecuTorchBackend(Backend):
    name = "executorch"
    suffix = ".pte"
    precisions = ("fp32", "int8")

    def available(self) -> str | None:
        try:
            import executorch.runtime  # noqa: F401
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner  # noqa: F401
        except ImportError as e:
            return f"executorch is not installed ({e}); pip install executorch==1.5.1"
        return None

    def export(self, source, spec: InputSpec, precision: str, out_file: Path) -> Artifact:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        self.check(precision, spec.layout)
        module = source.reference(precision, spec)
        x = torch.rand(spec.shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ep = torch.export.export(module, (x,), strict=False)
            total_macs = count_graph_macs(ep.graph_module)  # (as aten ops: decomposing the Q/DQ graph costs minutes)
            edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
            report = delegation_report(edge.exported_program().graph_module, total_macs)
            program = edge.to_executorch()
        out_file = Path(out_file)
        _atomic_write(out_file, lambda t: Path(t).write_bytes(program.buffer))
        art = Artifact(backend=self.name, precision=precision, file=out_file.name, input=spec,
                       preset=source.preset or "", checkpoint_sha256=source.checkpoint_sha256,
                       source=source.describe(),
                       tools=tool_versions("executorch", "torchao"),
                       runtime={"runtime": "ExecuTorch >= 1.5 with the XNNPACK backend", "delegate": "XNNPACK"},
                       details={"delegation": report}, bytes=file_bytes(out_file), sha256=file_sha256(out_file))
        if precision == "int8":
            q = source.quant_info()
            art.quant_state_sha256, art.quant_scheme = q["sha256"], f"{q['scheme']} ({q['mode']})"
        _PROBED.add(art.sha256)  # written by this process from a traced model: no need to probe it
        return art

    def load(self, artifact: Artifact, folder: Path, etdump: bool = False) -> Runner:
        return _PteRunner(artifact, Path(folder), etdump)

    def profile(self, artifact: Artifact, folder: Path, repeats: int = 10) -> dict:
        """Per-op timings from ETDump (operators inside the XNNPACK delegate included)."""
        runner = _PteRunner(artifact, Path(folder), etdump=True)
        x = np.random.default_rng(0).random(artifact.input.shape, dtype=np.float32)
        for _ in range(repeats):
            runner.run(x)
        with tempfile.TemporaryDirectory() as tmp:
            dump = Path(tmp) / "run.etdump"
            runner.program.write_etdump_result_to_file(str(dump), str(Path(tmp) / "debug.bin"))
            if not dump.is_file() or dump.stat().st_size == 0:
                raise BackendUnavailable("this executorch wheel wrote no ETDump events (built without event tracing)")
            return {**read_etdump(dump), "repeats": repeats}


def read_etdump(dump: Path) -> dict:
    """Per-op and whole-method times from an ETDump file (the host's or one pulled from a device's
    executor_runner): operators inside the XNNPACK delegate are named "<type> #<index>" and grouped by type."""
    from executorch.devtools import Inspector
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            inspector = Inspector(etdump_path=str(dump))
        except Exception as e:  # the flatbuffer reader raises assorted types on a corrupt file
            raise ArtifactError(f"{dump}: not a readable ETDump ({type(e).__name__}: {str(e)[:100]})") from None
    per_run: dict[str, list] = collections.defaultdict(list)  # op type -> per-node lists of run times
    method_ms, setup = [], {}
    for block in inspector.event_blocks:
        for ev in block.events:
            if ev.perf_data is None:
                continue
            if ev.name == "Method::execute":
                method_ms += list(ev.perf_data.raw)
            elif ev.name in ("DELEGATE_CALL", "Program::load_method", "Method::init"):
                setup[ev.name] = float(np.median(ev.perf_data.raw))
            else:
                per_run[re.sub(r"\s*#\d+$", "", ev.name)].append(list(ev.perf_data.raw))
    rows = []
    for name, nodes in per_run.items():
        n = min(len(r) for r in nodes)
        totals = np.sum([r[:n] for r in nodes], axis=0)  # one number per run: all nodes of this type
        rows.append({"op": name, "count": len(nodes), "ms_median": float(np.median(totals))})
    rows.sort(key=lambda r: -r["ms_median"])
    if not method_ms and "DELEGATE_CALL" in setup:
        method_ms = [setup["DELEGATE_CALL"]]
    return {"method_ms_median": float(np.median(method_ms)) if method_ms else None, "method_ms": method_ms,
            "ops": rows, "setup_ms": setup, "source": "ETDump + executorch.devtools.Inspector"}


# sha256 of the programs known to load without killing the process: probed in a child, or exported here
_PROBED: set[str] = set()
_PROBE_TIMEOUT_S = 120.0
_HELD: list = []


def probe_load(path: Path) -> None:
    """Load the program and its method in a forked child before this process does, once per file content.

    A malformed program can kill the process from native code, where no `except` reaches: a .pte whose XNNPACK
    named-data key is not UTF-8 makes the delegate log the key, and the bindings' log bridge aborts (SIGABRT)
    on the undecodable text. A child that dies by a signal makes it an ArtifactError here instead; one that
    fails cleanly leaves the error to the load in this process, which raises it as usual."""
    if not hasattr(os, "fork"):  # (Windows: no fork; the load runs unprobed as before)
        return
    sha = file_sha256(path)
    if sha in _PROBED:
        return
    with warnings.catch_warnings():  # (Python 3.12+ warns of fork in a process with threads; the child only
        warnings.simplefilter("ignore", DeprecationWarning)  # loads, it starts no torch or XNNPACK work)
        pid = os.fork()
    if pid == 0:
        code = 3
        _HELD.extend((sys.stdout, sys.stderr))  # never collected: their finalizers would flush the parent's text
        try:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (1, 2):  # the runtime's log lines of a failed load are the parent's to report, once
                os.dup2(null, fd)
            sys.stdout = sys.stderr = open(null, "w", closefd=False)
            import faulthandler  # (it writes to its own copy of stderr: pytest's, `python -X faulthandler`:
            faulthandler.disable()  # a "Fatal Python error: Aborted" dump of the child the parent already reports)
            from executorch.runtime import Runtime
            Runtime.get().load_program(str(path), enable_etdump=False, debug_buffer_size=0).load_method("forward")
            code = 0
        except BaseException:  # noqa: BLE001 - a clean failure: the load in the parent reports it
            code = 1
        finally:
            os._exit(code)
    status = _wait_child(pid)
    if status is not None and os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        raise ArtifactError(f"{path}: not a loadable ExecuTorch program (loading it kills the runtime: {name}); "
                            "export it again from its checkpoint")
    if status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        _PROBED.add(sha)


def _wait_child(pid: int) -> int | None:
    """The child's wait status; None when it ran past _PROBE_TIMEOUT_S (it is killed: a hang says nothing of
    the program, so the caller loads it as it would have without the probe)."""
    deadline, pause = time.monotonic() + _PROBE_TIMEOUT_S, 0.0005
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None
            time.sleep(pause)
            pause = min(pause * 2, 0.02)
    except BaseException:  # Ctrl-C while waiting: leave no child behind
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        raise


class _PteRunner(Runner):
    def __init__(self, artifact: Artifact, folder: Path, etdump: bool = False):
        super().__init__(artifact)
        from executorch.runtime import Runtime

        path = artifact.path(folder)
        if path.is_file():
            probe_load(path)
        try:
            self.program = Runtime.get().load_program(str(path), enable_etdump=etdump, debug_buffer_size=0)
            self.method = self.program.load_method("forward")
        except Exception as e:  # the runtime raises RuntimeError/ValueError with multi-line text
            raise ArtifactError(f"{path}: not a loadable ExecuTorch program ({str(e).splitlines()[0][:120]})") from None

    def run(self, x: np.ndarray) -> np.ndarray:
        self.artifact.input.check(x)
        out = self.method.execute([torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))])
        return out[0].numpy()

