"""The TFLite backend through the same protocol: fp32 in NCHW and NHWC, fp16 weights, and int8 carried from
the QAT state (the default float1 scheme, and full-integer from a --float-levels 0 state), each checked as a
real .tflite run; the int8 files are read back to show int8 weights and activations on the convolutions and
the QAT state's own scales."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import torch

from conversion.base import ArtifactError, InputSpec, get_backend, read_record, write_record
from conversion.quantize import QuantConfig, load_quantized, quantize
from conversion.source import ModelSource
from conversion.tflite_backend import _interpreter, conv_tensor_types, float16_weights, read_metadata
from conversion.verify import verify
from conftest import TINY_QAT


TILE = 64


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_qat):
    d = tmp_path_factory.mktemp("tfl")
    ck, qat = tiny_qat
    be = get_backend("tflite")
    for layout in ("NCHW", "NHWC"):
        write_record(be.export(ModelSource(str(ck)), InputSpec(TILE, TILE, layout=layout), "fp32",
                               d / f"tiny-{layout}.tflite"), d)
    src = ModelSource(str(ck), quant_state=str(qat))
    write_record(be.export(src, InputSpec(TILE, TILE), "fp16", d / "tiny-fp16.tflite"), d)
    write_record(be.export(src, InputSpec(TILE, TILE, layout="NHWC"), "int8", d / "tiny-int8-NHWC.tflite"), d)
    # every level int8: the full-integer file
    quantize(str(ck), d / "qat0", QuantConfig(**{**TINY_QAT, "steps": 2, "float_levels": 0}), quiet=True)
    write_record(be.export(ModelSource(str(ck), quant_state=str(d / "qat0")), InputSpec(TILE, TILE, layout="NHWC"),
                           "int8", d / "tiny-int8-full-NHWC.tflite"), d)
    return d, ck


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_fp32_tflite_matches_eager(work, layout):
    d, _ = work
    rec = read_record(d / f"tiny-{layout}.tflite")
    assert rec.input.layout == layout and rec.tools["litert-torch"] == "0.10.0"
    assert rec.details["ops"]["CONV_2D"] > 50
    v = verify(d / f"tiny-{layout}.tflite", tasks=("noise25", "haze"))
    assert v["passed"] and v["numeric_psnr_min"] >= 60


@pytest.mark.parametrize("name,layout,dtype", [("tiny-NHWC", "NHWC", "float32"), ("tiny-fp16", "NCHW", "float32"),
                                               ("tiny-int8-NHWC", "NHWC", "float32"),
                                               ("tiny-int8-full-NHWC", "NHWC", "int8")])
def test_files_carry_a_named_signature_and_metadata_the_app_reads(work, name, layout, dtype):
    d, _ = work
    interp = _interpreter(d / f"{name}.tflite", 1)
    assert interp.get_signature_list() == {"restore": {"inputs": ["image"], "outputs": ["restored"]}}
    meta = read_metadata(d / f"{name}.tflite")
    assert meta["layout"] == layout and meta["tile"] == [TILE, TILE] and meta["value_range"] == [0.0, 1.0]
    assert meta["color_order"] == "RGB" and meta["io"]["input"]["dtype"] == dtype
    assert meta["checkpoint_sha256"] == read_record(d / f"{name}.tflite").checkpoint_sha256
    runner = interp.get_signature_runner("restore")
    shape = read_record(d / f"{name}.tflite").input.shape
    out = runner(image=np.zeros(shape, dtype=np.dtype(dtype)))["restored"]
    assert out.shape == shape


def test_nhwc_artifact_takes_interleaved_pixels(work):
    d, _ = work
    art = read_record(d / "tiny-NHWC.tflite")
    runner = get_backend("tflite").load(art, d)
    x = np.random.default_rng(0).random((1, TILE, TILE, 3), dtype=np.float32)
    assert runner.run(x).shape == (1, TILE, TILE, 3)
    with pytest.raises(ArtifactError, match="exported for"):
        runner.run(np.zeros((1, 3, TILE, TILE), np.float32))


def test_fp16_file_stores_float16_weights_and_stays_close_to_eager(work):
    d, _ = work
    rec = read_record(d / "tiny-fp16.tflite")
    interp = _interpreter(d / "tiny-fp16.tflite", 1)
    n_conv = len(conv_tensor_types(interp))
    assert float16_weights(interp) >= n_conv // 2  # conv weights are float16 constants + DEQUANTIZE
    assert rec.bytes < 0.85 * read_record(d / "tiny-NCHW.tflite").bytes
    v = verify(d / "tiny-fp16.tflite", tasks=("noise25", "rain"))
    assert v["passed"] and v["threshold"] == 45 and v["numeric_psnr_min"] >= 45


def test_float1_file_is_int8_below_the_full_resolution(work, tiny_qat):
    d, ck = work
    interp = _interpreter(d / "tiny-int8-NHWC.tflite", 1)
    td = {t["index"]: t for t in interp.get_tensor_details()}
    convs = [(c, tuple(td[o["outputs"][0]]["shape"][1:3])) for c, o in zip(
        conv_tensor_types(interp), [o for o in interp._get_ops_details() if o["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")])]
    ref, _ = load_quantized(tiny_qat[1], TILE, TILE, checkpoint=str(ck), fold=False)
    qc = [n for n in ref.graph.nodes if n.target == torch.ops.quantized_decomposed.quantize_per_channel.default]
    int8 = [(c, hw) for c, hw in convs if c["weight_scales"] > 0]
    assert len(int8) == len(qc) > 50 and all(hw != (TILE, TILE) for _, hw in int8)
    assert all(c["input"] == c["weight"] == c["output"] == "int8" and c["bias"] == "int32" for c, _ in int8)
    learned_float = [(c, hw) for c, hw in convs if not c["weight_scales"] and not c["weight_name"].startswith("arith.constant")]
    assert len(learned_float) > 10 and all(hw == (TILE, TILE) and c["weight"] == "float32" for c, hw in learned_float)
    assert read_record(d / "tiny-int8-NHWC.tflite").quant_scheme.startswith("w8a8-xnnpack-float1")


def test_int8_file_has_int8_weights_and_activations_on_the_convolutions(work):
    d, ck = work
    interp = _interpreter(d / "tiny-int8-full-NHWC.tflite", 1)
    convs = conv_tensor_types(interp)
    learned = [c for c in convs if c["weight_scales"] > 0]
    ref, _ = load_quantized(d / "qat0", TILE, TILE, checkpoint=str(ck), fold=False)
    qc = [n for n in ref.graph.nodes if n.target == torch.ops.quantized_decomposed.quantize_per_channel.default]
    # every learned convolution of the Q/DQ reference is an int8 x int8 -> int8 op with per-channel weights
    assert len(learned) == len(qc) > 100
    assert all(c["input"] == c["weight"] == c["output"] == "int8" and c["bias"] == "int32" for c in learned)
    # the rest are the channel-LayerNorm's constant averaging kernels, float by design (per-image statistics)
    assert all(c["input"] == "float32" and c["weight_name"].startswith("arith.constant") for c in convs
               if c["weight_scales"] == 0)
    # the QAT state's scales arrived unchanged: per-channel weight scales and activation scales
    get = lambda a: getattr(ref, a.target) if isinstance(a, torch.fx.Node) else a  # noqa: E731
    want_w = sorted(tuple(np.round(get(n.args[1]).numpy(), 9)) for n in qc)
    td = {t["index"]: t for t in interp.get_tensor_details()}
    ops = [o for o in interp._get_ops_details() if o["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    got_w = sorted(tuple(np.round(td[o["inputs"][1]]["quantization_parameters"]["scales"], 9)) for o in ops
                   if len(td[o["inputs"][1]]["quantization_parameters"]["scales"]))
    assert len(got_w) == len(want_w) and all(np.allclose(a, b, rtol=1e-5) for a, b in zip(got_w, want_w))
    act = {round(float(n.args[1]), 7) for n in ref.graph.nodes
           if n.target == torch.ops.quantized_decomposed.quantize_per_tensor.default}
    outs = {round(float(td[o["outputs"][0]]["quantization_parameters"]["scales"][0]), 7) for o in ops
            if len(td[o["inputs"][1]]["quantization_parameters"]["scales"])}
    assert outs <= act
    rec = read_record(d / "tiny-int8-full-NHWC.tflite")
    io = rec.details["io"]
    assert rec.input.dtype == "int8" and io["input"]["zero_point"] == -128 and abs(io["input"]["scale"] - 1 / 255) < 1e-4


def test_int8_tflite_runs_close_to_its_fake_quantized_reference(work):
    d, _ = work
    v = verify(d / "tiny-int8-NHWC.tflite", tasks=("noise25", "rain"))
    # The tiny random model (seeded, conftest.random_model) sits at 35.8 dB against its reference, as its .pte
    # does (35.7); unseeded, each run drew another model and CI saw 21.7 and 27.8 dB. The 40 dB must-show is
    # the default checkpoint's (README build table; `anyir verify` fails under 40).
    assert v["numeric_psnr_min"] >= 33 and v["reference"].startswith("converted Q/DQ")


@pytest.mark.parametrize("name", ["tiny-int8-NHWC", "tiny-int8-full-NHWC"])
def test_int8_files_run_on_tflites_own_kernels_too(work, name):
    """Not only where XNNPACK takes every op: an app whose GPU/NNAPI delegate leaves ops to the CPU runs them
    on TFLite's builtin kernels, which refuse an int8 LOGISTIC unless its output scale is 1/256 (zero point
    -128). While sigmoid outputs were quantized with calibrated scales, these files failed at allocation."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    d, _ = work
    path = d / f"{name}.tflite"
    builtin = Interpreter(model_path=str(path), num_threads=1,
                          experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    xnnpack = _interpreter(path, 1)
    info, out_info = builtin.get_input_details()[0], builtin.get_output_details()[0]
    x = np.random.default_rng(0).random(info["shape"], dtype=np.float32)
    if info["dtype"] == np.int8:  # the full-integer file takes the 8-bit pixel - 128
        scale, zero_point = info["quantization"]
        x = np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)
    outs = []
    for interp in (builtin, xnnpack):
        y = interp.get_signature_runner("restore")(image=x)["restored"].astype(np.float32)
        if out_info["dtype"] == np.int8:
            y = (y - out_info["quantization"][1]) * out_info["quantization"][0]
        outs.append(y)
    # no int8 LOGISTIC (sigmoid outputs stay float) and every MEAN float, as in the reference
    assert not any(k in ("LOGISTIC", "MEAN") for k in _int8_op_kinds(path))
    assert read_record(path).details["int8_means_made_float"] > 0
    # the two kernel sets round differently in places, and the tiny random model amplifies that as it does
    # between runtime and reference (35.8 dB); a broken path lands near 10-15 dB
    psnr = 10 * np.log10(1.0 / np.mean((outs[0] - outs[1]) ** 2))
    assert psnr >= 30, psnr


def _int8_op_kinds(path):
    """Builtin names of the ops whose output is int8."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(path.read_bytes(), 0))
    graph = model.subgraphs[0]
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if graph.tensors[op.outputs[0]].type == schema.TensorType.INT8:
            yield names[max(code.builtinCode, code.deprecatedBuiltinCode)]


def test_corrupt_files_are_one_line_errors(work, tmp_path):
    d, ck = work
    r = subprocess.run([sys.executable, "-m", "mobile.cli", "export", "--backend", "tflite", "--precision", "int8",
                        "--checkpoint", str(ck), "--out", str(tmp_path)], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 2 and "needs a quantization state" in r.stderr and "Traceback" not in r.stderr
    art = read_record(d / "tiny-NCHW.tflite")
    (tmp_path / "bad.tflite").write_bytes(b"TFL3" + b"\0" * 100)
    bad = type(art).from_dict({**art.to_dict(), "file": "bad.tflite", "sha256": ""})
    with pytest.raises(ArtifactError, match="not a loadable TFLite model"):
        get_backend("tflite").load(bad, tmp_path)
