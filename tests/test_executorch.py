"""QAT/PTQ states and the ExecuTorch backend, end to end on the tiny preset: export, delegation,
the real .pte run against its PyTorch reference, profiling, and the bad inputs a user will hit."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from anyir_core import AnyIRError, CheckpointError, save_checkpoint
from anyir_core.checkpoint import read_safetensors
from conversion.base import ArtifactError, InputSpec, get_backend, read_record, write_record
from conversion.quantize import QuantConfig, load_quantized, quantize
from conversion.source import ModelSource
from conversion.verify import verify

from conftest import random_model

TILE = 64
QUICK = dict(steps=6, patch=32, batch=2, calibration_patch=32, calibration_batch=2, save_every=3, log_every=1,
             tasks=["noise25", "rain"], threads=1)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("et")
    ck = d / "tiny.safetensors"
    save_checkpoint(random_model(scale=0.05), ck, "anyir-tiny")
    quantize(str(ck), d / "qat", QuantConfig(**QUICK), quiet=True)
    src = ModelSource(str(ck), quant_state=str(d / "qat"))
    be = get_backend("executorch")
    arts = {}
    for precision in ("fp32", "int8"):
        art = be.export(src, InputSpec(TILE, TILE), precision, d / f"tiny-{precision}.pte")
        write_record(art, d)
        arts[precision] = art
    return d, ck, arts


def test_quant_state_excludes_trace_constants_and_loads_at_another_tile(work):
    d, ck, _ = work
    state, meta = read_safetensors(d / "qat" / "quant.safetensors")
    assert meta["scheme"] == "w8a8-xnnpack-float1" and meta["mode"] == "qat"
    assert not any(k.startswith("_tensor_constant") for k in state)  # 1/sqrt(HW) etc. belong to the traced size
    assert any("activation_post_process" in k for k in state)
    # activation ranges were calibrated, then frozen; weight quantizers keep observing the changing weights
    enabled = [int(v) for k, v in state.items() if k.endswith(".observer_enabled")]
    assert enabled.count(0) > 20 and enabled.count(1) > 5
    info = json.loads((d / "qat" / "quant.json").read_text())
    assert info["steps"] == 6 and info["training"]["steps"] == 6
    # QAT changed the weights it fine-tuned
    ck_state, _ = read_safetensors(ck)
    assert not torch.equal(state["net.patch_embed.proj.weight"], ck_state["patch_embed.proj.weight"])
    ref, _ = load_quantized(d / "qat", 48, 80)
    out = ref(torch.rand(1, 3, 48, 80))
    assert out.shape == (1, 3, 48, 80) and torch.isfinite(out).all()
    n_q = sum("quantize_per_tensor" in str(n.target) for n in ref.graph.nodes)
    assert n_q > 20  # activations really are quantized in the reference


def test_qat_resume_reproduces_the_straight_run(work, tmp_path):
    d, ck, _ = work
    quantize(str(ck), tmp_path / "a", QuantConfig(**QUICK), quiet=True, stop_after=4)
    assert not (tmp_path / "a" / "quant.safetensors").exists()
    with pytest.raises(AnyIRError, match="--resume"):
        quantize(str(ck), tmp_path / "a", QuantConfig(**QUICK), quiet=True)
    quantize(str(ck), tmp_path / "a", QuantConfig(**QUICK), quiet=True, resume=True)
    a = [json.loads(line)["loss"] for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    b = [json.loads(line)["loss"] for line in (d / "qat" / "log.jsonl").read_text().splitlines()]
    assert len(a) == 6 and a == pytest.approx(b, rel=1e-4)


def test_ptq_calibrates_without_touching_weights(work, tmp_path):
    _, ck, _ = work
    quantize(str(ck), tmp_path / "p", QuantConfig(**{**QUICK, "mode": "ptq"}), quiet=True)
    state, meta = read_safetensors(tmp_path / "p" / "quant.safetensors")
    ck_state, _ = read_safetensors(ck)
    assert meta["mode"] == "ptq"
    assert json.loads((tmp_path / "p" / "quant.json").read_text())["steps"] == 0
    assert torch.equal(state["net.patch_embed.proj.weight"], ck_state["patch_embed.proj.weight"])
    # the same calibration as QAT's (same seeds): only the fine-tuning differs
    qat, _ = read_safetensors(work[0] / "qat" / "quant.safetensors")
    frozen = [k[:-len(".observer_enabled")] for k, v in state.items() if k.endswith(".observer_enabled") and not v]
    assert len(frozen) > 20 and all(torch.equal(state[f"{k}.{b}"], qat[f"{k}.{b}"]) for k in frozen
                                    for b in ("scale", "zero_point"))


@pytest.mark.parametrize("levels", [0, 1, 2])
def test_high_resolution_levels_stay_float(work, levels):
    from anyir_core import export_form, load_checkpoint
    from conversion.quantize import prepare

    _, ck, _ = work
    gm = prepare(export_form(load_checkpoint(str(ck))), 48, 80, qat=False, float_levels=levels)
    quantized = {tuple(n.args[0].meta["val"].shape[-2:]) for n in gm.graph.nodes
                 if n.op == "call_module" and "activation_post_process" in n.target and len(n.args[0].meta["val"].shape) == 4}
    float_res = {(48, 80), (24, 40)}.__iter__()
    kept_float = [next(float_res) for _ in range(levels)]
    assert not quantized & set(kept_float)  # no activation of a float level is quantized ...
    assert {(6, 10), (12, 20)} <= quantized  # ... and every lower level is
    if levels == 0:
        assert (48, 80) in quantized and (24, 40) in quantized


def test_calibration_takes_the_union_of_the_per_task_ranges(work):
    from anyir_core import export_form, load_checkpoint
    from conversion.quantize import calibrate_activation_ranges, prepare, task_samplers, trace

    _, ck, _ = work
    fp = export_form(load_checkpoint(str(ck)))
    cfg = QuantConfig(**{**QUICK, "tasks": ["noise50", "haze"]})
    cfg.validate()
    per_task = task_samplers(cfg)
    traced = trace(fp, cfg.patch, cfg.patch)  # one trace for the three runs (calibration patch = QAT patch here)
    assert cfg.calibration_patch == cfg.patch

    def ranges(samplers):
        gm = prepare(fp, cfg.patch, cfg.patch, qat=True, traced=traced)
        assert calibrate_activation_ranges(gm, fp, samplers, 2, traced=traced) > 20
        return {n: (float(m.activation_post_process.min_val), float(m.activation_post_process.max_val))
                for n, m in gm.named_modules() if hasattr(m, "disable_observer") and not m.is_per_channel}

    noise, haze, both = ranges(per_task[:1]), ranges(per_task[1:]), ranges(per_task)
    assert set(both) == set(noise) == set(haze)
    for name, (lo, hi) in both.items():
        assert lo == pytest.approx(min(noise[name][0], haze[name][0]), rel=1e-5, abs=1e-7)
        assert hi == pytest.approx(max(noise[name][1], haze[name][1]), rel=1e-5, abs=1e-7)
    # the two degradations really ask for different ranges somewhere
    assert any(abs(noise[n][1] - haze[n][1]) > 0.05 * max(abs(noise[n][1]), 1e-3) for n in both)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_whole_graph_is_delegated_to_xnnpack(work, precision):
    _, _, arts = work
    rep = arts[precision].details["delegation"]
    assert rep["subgraphs"] == 1
    assert rep["mac_share_delegated"] == 1.0 and rep["macs_total"] > 0
    assert set(rep["ops_outside"]) <= {"getitem"}  # the delegate call's output unpacking
    assert "aten_convolution_default" in rep["ops_delegated"]


def test_records_describe_the_artifacts(work):
    d, ck, arts = work
    rec = read_record(d / "tiny-int8.pte")
    assert rec.backend == "executorch" and rec.precision == "int8" and rec.input.shape == (1, 3, TILE, TILE)
    assert rec.quant_scheme.startswith("w8a8-xnnpack") and rec.quant_state_sha256
    assert rec.tools["executorch"] == "1.5.1" and rec.bytes == (d / "tiny-int8.pte").stat().st_size
    assert arts["int8"].bytes < arts["fp32"].bytes


def test_fp32_pte_matches_eager(work):
    d, _, _ = work
    v = verify(d / "tiny-fp32.pte", tasks=("noise25", "rain"))
    assert v["passed"] and v["numeric_psnr_min"] >= 60


@pytest.fixture(scope="module")
def int8_verdict(work):
    d, _, _ = work
    return verify(d / "tiny-int8.pte", tasks=("noise25", "rain"))


def test_int8_pte_computes_the_quantized_network(int8_verdict):
    # a broken conversion (wrong scales, layout, dropped op) lands near 10-15 dB; int8 rounding alone far above 25
    assert int8_verdict["reference"].startswith("converted Q/DQ")
    assert int8_verdict["numeric_psnr_min"] >= 25


def test_int8_pte_stays_close_to_its_fake_quantized_reference(int8_verdict):
    # The tiny random model (seeded: the same in every run) sits at 35.5 dB against its reference; before the
    # seeding each run drew another random model and this ranged 21-41 dB across runtimes. The 40 dB must-show
    # is measured on the default checkpoint (README build table; `anyir verify` fails under 40 dB).
    assert int8_verdict["numeric_psnr_min"] >= 33


def test_wrong_input_size_and_corrupt_pte_are_one_line_errors(work, tmp_path):
    d, _, arts = work
    runner = get_backend("executorch").load(arts["fp32"], d)
    with pytest.raises(ArtifactError, match="exported for"):
        runner.run(np.zeros((1, 3, 32, 32), np.float32))
    bad = tmp_path / "bad.pte"
    bad.write_bytes((d / "tiny-fp32.pte").read_bytes()[:5000])
    art = arts["fp32"]
    art_bad = type(art).from_dict({**art.to_dict(), "file": "bad.pte", "sha256": ""})
    with pytest.raises(ArtifactError, match="not a loadable ExecuTorch program"):
        get_backend("executorch").load(art_bad, tmp_path)
    (tmp_path / "bad.pte").write_bytes((d / "tiny-fp32.pte").read_bytes()[:5000])
    rec = json.loads((d / "tiny-fp32.pte.json").read_text())
    rec["file"] = "bad.pte"  # the record is bad.pte's own; only the bytes differ from what it says
    (tmp_path / "bad.pte.json").write_text(json.dumps(rec))
    with pytest.raises(ArtifactError, match="checksum differs"):
        read_record(tmp_path / "bad.pte")


def test_a_pte_that_kills_the_runtime_is_refused_in_a_child_once_per_file(work, tmp_path, monkeypatch):
    import os
    import re

    from conversion import executorch_backend as eb
    d, _, arts = work
    data = bytearray((d / "tiny-fp32.pte").read_bytes())
    key = list(re.finditer(rb"[0-9a-f]{64}", bytes(data)))[-1]  # a named-data key inside the XNNPACK blob
    data[key.start() + 8] = 0xA2  # no longer UTF-8: the delegate logs it and the bindings' log bridge aborts
    (tmp_path / "bad.pte").write_bytes(bytes(data))
    bad = type(arts["fp32"]).from_dict({**arts["fp32"].to_dict(), "file": "bad.pte", "sha256": ""})
    with pytest.raises(ArtifactError, match="kills the runtime: SIGABRT"):
        get_backend("executorch").load(bad, tmp_path)  # (this process lives on to see it)
    forks = []
    real_fork = os.fork
    monkeypatch.setattr(eb.os, "fork", lambda: forks.append(1) or real_fork())
    get_backend("executorch").load(arts["fp32"], d)
    assert forks == []  # exported by this process: trusted without a probe
    eb._PROBED.discard(arts["fp32"].sha256)
    for _ in range(2):
        get_backend("executorch").load(arts["fp32"], d).run(np.zeros(arts["fp32"].input.shape, np.float32))
    assert len(forks) == 1  # probed once per file content


def test_profile_reads_xnnpack_operator_events(work):
    d, _, arts = work
    prof = get_backend("executorch").profile(arts["fp32"], d, repeats=3)
    names = [r["op"] for r in prof["ops"]]
    assert prof["method_ms_median"] > 0
    assert any("Convolution" in n for n in names), names[:10]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "mobile.cli", *args], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])


def test_cli_bad_inputs(work, tmp_path):
    d, ck, _ = work
    # a checkpoint of another preset than the one asked for
    r = _cli("export", "--backend", "executorch", "--checkpoint", str(ck), "--preset", "anyir-mobile", "--out", str(tmp_path))
    assert r.returncode == 2 and "does not fit preset 'anyir-mobile'" in r.stderr and "Traceback" not in r.stderr
    # int8 without a quantization state
    r = _cli("export", "--backend", "executorch", "--precision", "int8", "--checkpoint", str(ck), "--out", str(tmp_path))
    assert r.returncode == 2 and "anyir qat" in r.stderr
    # a quantization state made from another checkpoint
    other = tmp_path / "other.safetensors"
    save_checkpoint(random_model(seed=9), other, "anyir-tiny")
    r = _cli("export", "--backend", "executorch", "--precision", "int8", "--checkpoint", str(other),
             "--quant-state", str(d / "qat"), "--out", str(tmp_path))
    assert r.returncode == 2 and "another checkpoint" in r.stderr
    r = _cli("qat", "--mode", "ptq", "--steps", "5", "--checkpoint", str(ck), "--out", str(tmp_path / "q"))
    assert r.returncode == 2 and "only calibrates" in r.stderr and not (tmp_path / "q").exists()
    r = _cli("qat", "--calibration-patch", "20", "--checkpoint", str(ck), "--out", str(tmp_path / "q"))
    assert r.returncode == 2 and "--calibration-patch must be a multiple of 8" in r.stderr and not (tmp_path / "q").exists()
    r = _cli("export", "--backend", "nope", "--out", str(tmp_path))
    assert r.returncode == 2 and "unknown backend" in r.stderr
    r = _cli("verify", str(tmp_path / "missing.pte"))
    assert r.returncode == 2 and "no such artifact" in r.stderr
    with pytest.raises(CheckpointError, match="not a quantization state"):
        load_quantized(tmp_path, 64, 64)
