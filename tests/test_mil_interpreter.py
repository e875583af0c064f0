"""The reference ML Program interpreter, checked independently of the model: every op it runs gets a
program of that op alone, built with coremltools' MIL builder, saved as a real .mlpackage, read back
and executed, and compared with an answer computed another way (by hand, numpy or torch)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import coremltools as ct
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from conversion.base import ArtifactError
from conversion.mil_interpreter import SUPPORTED_OPS, Program, UnsupportedOp, op_types, read_blob

_DT = {np.float32: types.fp32, np.float16: types.fp16, np.int8: types.int8, np.int32: types.int32}


def run_op(tmp_path, build, **inputs):
    """Build a program `build(**inputs)` over inputs of the given arrays' shapes and dtypes, save it as an
    .mlpackage with no optimisation passes (the op stays as built), load it and run it on `inputs`."""
    specs = [mb.TensorSpec(shape=v.shape, dtype=_DT[v.dtype.type]) for v in inputs.values()]
    names = list(inputs)

    # the builder names a program's inputs after its function's parameters
    ns = {"build": build}
    exec(f"def main({', '.join(names)}):\n    return build({', '.join(f'{n}={n}' for n in names)})", ns)
    prog = mb.program(input_specs=specs, opset_version=ct.target.iOS17)(ns["main"])
    ml = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                    pass_pipeline=ct.PassPipeline.EMPTY, compute_precision=ct.precision.FLOAT32)
    path = tmp_path / f"op{len(list(tmp_path.iterdir()))}.mlpackage"
    ml.save(str(path))
    p = Program(path)
    out = p.run(inputs)
    return p, out[p.outputs[0]]


def rnd(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def t(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float32))


# op -> test cases below (the must-show: every op in the project's artifacts has its own test)
OP_TESTS = {
    "const": "test_const_immediate_and_blob_values", "add": "test_elementwise", "sub": "test_elementwise",
    "mul": "test_elementwise", "real_div": "test_elementwise", "sqrt": "test_unary", "rsqrt": "test_unary",
    "sigmoid": "test_unary", "gelu": "test_gelu_modes", "clip": "test_unary", "softmax": "test_softmax",
    "reduce_mean": "test_reduce_mean", "batch_norm": "test_batch_norm", "conv": "test_conv",
    "matmul": "test_matmul", "reshape": "test_shape_ops", "transpose": "test_shape_ops", "concat": "test_concat",
    "pixel_shuffle": "test_pixel_shuffle_pair", "pixel_unshuffle": "test_pixel_shuffle_pair", "cast": "test_cast",
    "quantize": "test_quantize_rounds_half_even_and_saturates", "dequantize": "test_dequantize_per_tensor_and_per_channel",
    "constexpr_affine_dequantize": "test_constexpr_affine_dequantize",
}


def test_every_supported_op_has_its_test():
    assert set(OP_TESTS) == set(SUPPORTED_OPS)
    assert all(name in globals() for name in OP_TESTS.values())


@pytest.mark.parametrize("op,ref", [("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("real_div", np.divide)])
def test_elementwise(tmp_path, op, ref):
    x, y = rnd(2, 3, 4, 5), rnd(1, 3, 1, 5, seed=1) + 3.0  # broadcasting, as the model's per-channel scales
    p, out = run_op(tmp_path, lambda x, y: getattr(mb, op)(x=x, y=y), x=x, y=y)
    assert op_types(p.path)[op] == 1
    np.testing.assert_allclose(out, ref(x, y), rtol=1e-6)


def test_fp16_program_rounds_every_op_to_fp16(tmp_path):
    one, tiny = np.full((1, 4), 1.0, np.float16), np.full((1, 4), 2.0 ** -11, np.float16)
    _, out = run_op(tmp_path, lambda x, y: mb.add(x=x, y=y), x=one, y=tiny)
    assert out.dtype == np.float16 and np.all(out == 1.0)  # 1 + 2^-11 is a tie: rounds to even (1.0) in fp16
    _, out = run_op(tmp_path, lambda x, y: mb.add(x=x, y=y), x=one, y=(tiny * 3).astype(np.float16))
    assert np.all(out == np.float16(1.0 + 2.0 ** -9))  # 1.5 ulp: a tie again, to the even 2 ulp
    big = np.full((1, 4), 60000.0, np.float16)
    _, out = run_op(tmp_path, lambda x, y: mb.add(x=x, y=y), x=big, y=big)
    assert np.all(np.isinf(out))  # fp16 overflows where fp32 would not


@pytest.mark.parametrize("op", ["sqrt", "rsqrt", "sigmoid", "clip"])
def test_unary(tmp_path, op):
    x = np.array([[0.0, 1e-8, 0.25, 4.0, 100.0, -90.0, 90.0]], np.float32)
    pos = np.abs(x)
    build = {"sqrt": lambda x: mb.sqrt(x=x), "rsqrt": lambda x: mb.rsqrt(x=x, epsilon=1e-4),
             "sigmoid": lambda x: mb.sigmoid(x=x), "clip": lambda x: mb.clip(x=x, alpha=0.1, beta=5.0)}[op]
    _, out = run_op(tmp_path, build, x=pos if op in ("sqrt", "rsqrt") else x)
    expected = {"sqrt": np.sqrt(pos), "rsqrt": 1 / np.sqrt(pos + 1e-4), "sigmoid": torch.sigmoid(t(x)).numpy(),
                "clip": np.clip(x, 0.1, 5.0)}[op]
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-12)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("mode", ["EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION"])
def test_gelu_modes(tmp_path, mode):
    x = np.linspace(-6, 6, 49, dtype=np.float32).reshape(1, 49)
    _, out = run_op(tmp_path, lambda x: mb.gelu(x=x, mode=mode), x=x)
    expected = {"EXACT": F.gelu(t(x)).numpy(), "TANH_APPROXIMATION": F.gelu(t(x), approximate="tanh").numpy(),
                "SIGMOID_APPROXIMATION": (t(x) * torch.sigmoid(1.702 * t(x))).numpy()}[mode]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_softmax(tmp_path):
    x = rnd(2, 3, 8) * 30  # large logits: needs the max subtracted
    _, out = run_op(tmp_path, lambda x: mb.softmax(x=x, axis=-1), x=x)
    np.testing.assert_allclose(out, torch.softmax(t(x), -1).numpy(), rtol=1e-5, atol=1e-7)


def test_reduce_mean(tmp_path):
    x = rnd(2, 3, 5, 7)
    _, out = run_op(tmp_path, lambda x: mb.reduce_mean(x=x, axes=[2, 3], keep_dims=True), x=x)
    assert out.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(out, x.mean(axis=(2, 3), keepdims=True), rtol=1e-5)
    _, out = run_op(tmp_path, lambda x: mb.reduce_mean(x=x, axes=[1], keep_dims=False), x=x)
    assert out.shape == (2, 5, 7)


def test_batch_norm(tmp_path):
    x = rnd(1, 4, 3, 3)
    m, v, g, b = rnd(4, seed=1), np.abs(rnd(4, seed=2)) + 0.1, rnd(4, seed=3), rnd(4, seed=4)
    _, out = run_op(tmp_path, lambda x: mb.batch_norm(x=x, mean=m, variance=v, gamma=g, beta=b, epsilon=1e-3), x=x)
    ref = F.batch_norm(t(x), t(m), t(v), t(g), t(b), training=False, eps=1e-3).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", [
    dict(cin=4, cout=6, k=3, groups=1, strides=[1, 1], pad_type="custom", pad=[1, 1, 1, 1], dilations=[1, 1]),
    dict(cin=6, cout=6, k=3, groups=6, strides=[1, 1], pad_type="custom", pad=[1, 1, 1, 1], dilations=[1, 1]),  # depthwise
    dict(cin=4, cout=8, k=3, groups=4, strides=[1, 1], pad_type="valid", pad=[0, 0, 0, 0], dilations=[2, 2]),  # multiplier 2
    dict(cin=8, cout=4, k=1, groups=2, strides=[1, 1], pad_type="valid", pad=[0, 0, 0, 0], dilations=[1, 1]),
    dict(cin=3, cout=5, k=3, groups=1, strides=[2, 2], pad_type="same", pad=[0, 0, 0, 0], dilations=[1, 1]),
    dict(cin=3, cout=2, k=2, groups=1, strides=[1, 1], pad_type="custom", pad=[0, 1, 1, 0], dilations=[1, 1]),
])
def test_conv(tmp_path, case):
    x = rnd(1, case["cin"], 9, 10)
    w = rnd(case["cout"], case["cin"] // case["groups"], case["k"], case["k"], seed=1)
    b = rnd(case["cout"], seed=2)
    kw = {k: case[k] for k in ("strides", "pad_type", "pad", "dilations", "groups")}
    _, out = run_op(tmp_path, lambda x: mb.conv(x=x, weight=w, bias=b, **kw), x=x)
    pt, pb, pl, pr = case["pad"]
    if case["pad_type"] == "same":  # 9x10, stride 2, k 3: out 5x5, total pad 2 and 1, the odd one at the end
        pt, pb, pl, pr = 1, 1, 0, 1
    xp = F.pad(t(x), (pl, pr, pt, pb))
    ref = F.conv2d(xp, t(w), t(b), stride=case["strides"], dilation=case["dilations"], groups=case["groups"]).numpy()
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_matmul(tmp_path):
    x, y = rnd(2, 3, 4), rnd(2, 5, 4, seed=1)
    _, out = run_op(tmp_path, lambda x, y: mb.matmul(x=x, y=y, transpose_y=True), x=x, y=y)
    np.testing.assert_allclose(out, x @ y.transpose(0, 2, 1), rtol=1e-5, atol=1e-6)
    _, out = run_op(tmp_path, lambda x, y: mb.matmul(x=x, y=y, transpose_x=True), x=rnd(2, 4, 3), y=rnd(2, 4, 5, seed=1))
    np.testing.assert_allclose(out, rnd(2, 4, 3).transpose(0, 2, 1) @ rnd(2, 4, 5, seed=1), rtol=1e-5, atol=1e-6)


def test_shape_ops(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    _, out = run_op(tmp_path, lambda x: mb.reshape(x=x, shape=[-1, 2, 12]), x=x)
    assert out.shape == (1, 2, 12) and out[0, 1, 0] == 12
    _, out = run_op(tmp_path, lambda x: mb.transpose(x=x, perm=[0, 2, 3, 1]), x=x)
    assert out.shape == (1, 3, 4, 2) and out[0, 2, 3, 1] == x[0, 1, 2, 3]


def test_concat(tmp_path):
    x, y = rnd(1, 2, 3), rnd(1, 4, 3, seed=1)
    _, out = run_op(tmp_path, lambda x, y: mb.concat(values=[x, y, x], axis=1), x=x, y=y)
    np.testing.assert_array_equal(out, np.concatenate([x, y, x], 1))
    _, out = run_op(tmp_path, lambda x, y: mb.concat(values=[x, y], axis=1, interleave=True), x=x, y=rnd(1, 2, 3, seed=1))
    np.testing.assert_array_equal(out[0, 1], rnd(1, 2, 3, seed=1)[0, 0])  # x0, y0, x1, y1


def test_pixel_shuffle_pair(tmp_path):
    x = rnd(1, 8, 3, 5)
    _, out = run_op(tmp_path, lambda x: mb.pixel_shuffle(x=x, upscale_factor=2), x=x)
    np.testing.assert_array_equal(out, F.pixel_shuffle(t(x), 2).numpy())
    _, out = run_op(tmp_path, lambda x: mb.pixel_unshuffle(x=x, downscale_factor=np.uint32(2)), x=rnd(1, 2, 6, 4))
    np.testing.assert_array_equal(out, F.pixel_unshuffle(t(rnd(1, 2, 6, 4)), 2).numpy())


def test_cast(tmp_path):
    x = np.array([[1.0 + 2.0 ** -12, 65519.0, 70000.0, -2.7]], np.float32)
    _, out = run_op(tmp_path, lambda x: mb.cast(x=x, dtype="fp16"), x=x)
    assert out.dtype == np.float16 and out[0, 0] == 1.0 and out[0, 1] == 65504.0 and np.isinf(out[0, 2])
    _, out = run_op(tmp_path, lambda x: mb.cast(x=x, dtype="int32"), x=x)
    assert out.dtype == np.int32 and out[0, 3] == -2


def quantized(tmp_path, x, **kw):
    """Run a quantize op; the program's int8/uint8 output gets a cast to int32 (Core ML outputs cannot be 8-bit),
    so read the quantize op's own result and check its declared dtype."""
    p, _ = run_op(tmp_path, lambda x: mb.quantize(input=x, **kw), x=x)
    op_type, _, name, (dtype, _), _ = p.ops[0]
    assert op_type == "quantize"
    out = p.run({"x": x}, keep=True)[name]
    assert out.dtype == dtype
    return out


def test_quantize_rounds_half_even_and_saturates(tmp_path):
    x = np.array([[0.5, 1.5, 2.5, -0.5, -1.5, 1000.0, -1000.0, 0.26]], np.float32)
    out = quantized(tmp_path, x, scale=np.float32(1.0), zero_point=np.int8(0), output_dtype="int8")
    assert out.dtype == np.int8 and out.tolist() == [[0, 2, 2, 0, -2, 127, -128, 0]]
    out = quantized(tmp_path, x, scale=np.float32(0.5), zero_point=np.uint8(128), output_dtype="uint8")
    assert out.dtype == np.uint8 and out.tolist() == [[129, 131, 133, 127, 125, 255, 0, 129]]
    ref = torch.quantize_per_tensor(t(x), 0.5, 0, torch.qint8).int_repr().numpy()
    np.testing.assert_array_equal(quantized(tmp_path, x, scale=np.float32(0.5), output_dtype="int8"), ref)


def test_dequantize_per_tensor_and_per_channel(tmp_path):
    q = np.array([[[-128, 0, 127], [5, -5, 10]]], np.int8)
    _, out = run_op(tmp_path, lambda q: mb.dequantize(input=q, scale=np.float32(0.5), zero_point=np.int8(-128)), q=q)
    np.testing.assert_array_equal(out, (q.astype(np.float32) + 128) * 0.5)
    s = np.array([0.5, 2.0], np.float32)
    zp = np.array([1, -1], np.int8)
    _, out = run_op(tmp_path, lambda q: mb.dequantize(input=q, scale=s, zero_point=zp, axis=1), q=q)
    np.testing.assert_array_equal(out, (q.astype(np.float32) - zp[None, :, None]) * s[None, :, None])


def test_constexpr_affine_dequantize(tmp_path):
    qd = np.arange(-12, 12, dtype=np.int8).reshape(3, 2, 2, 2)
    scale, zp = np.array([0.1, 1.0, 2.0], np.float32), np.array([0, 1, -2], np.int8)

    def build(x):
        w = mb.constexpr_affine_dequantize(quantized_data=qd, zero_point=zp, scale=scale, axis=0)
        return mb.add(x=x, y=w)

    p, out = run_op(tmp_path, build, x=np.zeros((3, 2, 2, 2), np.float32))
    assert op_types(p.path)["constexpr_affine_dequantize"] == 1
    np.testing.assert_allclose(out, (qd.astype(np.float32) - zp[:, None, None, None]) * scale[:, None, None, None], rtol=1e-7)


def test_const_immediate_and_blob_values(tmp_path):
    small = np.array([-2.0], np.float32)                 # stays inline in the program
    big = rnd(64, 64, seed=5)                            # goes to the weight file
    big16 = rnd(32, 32, seed=6).astype(np.float16)
    _, out = run_op(tmp_path, lambda x: mb.add(x=mb.mul(x=x, y=small), y=mb.reduce_mean(x=big, axes=[1], keep_dims=False)),
                    x=np.ones(64, np.float32))
    np.testing.assert_allclose(out, -2.0 + big.mean(1), rtol=1e-5)
    p, out = run_op(tmp_path, lambda x: mb.add(x=x, y=big16), x=np.zeros((32, 32), np.float16))
    assert out.dtype == np.float16 and np.array_equal(out, big16)
    assert (p.path / "Data/com.apple.CoreML/weights/weight.bin").stat().st_size > big16.nbytes


@pytest.mark.parametrize("dtype,method", [(np.float16, "fp16"), (np.float32, "float"), (np.int8, "int8"),
                                          (np.uint8, "uint8"), (np.int16, "int16"), (np.uint16, "uint16"),
                                          (np.int32, "int32"), (np.uint32, "uint32")])
def test_blob_reader_agrees_with_coremltools_writer(tmp_path, dtype, method):
    from coremltools import libmilstoragepython as storage

    path = tmp_path / "w.bin"
    writer = storage._BlobStorageWriter(str(path))
    data = [(np.arange(37) * 7 - 100).astype(dtype), (np.arange(5) + 3).astype(dtype)]
    # (coremltools' writer takes fp16 data as its uint16 bit patterns)
    offsets = [getattr(writer, f"write_{method}_data")(np.ascontiguousarray(d.view(np.uint16) if dtype == np.float16 else d))
               for d in data]
    del writer
    for d, off in zip(data, offsets):
        np.testing.assert_array_equal(read_blob(path, off), d)


def test_an_unknown_op_is_refused_by_name(tmp_path):
    with pytest.raises(UnsupportedOp, match=r"op 'tanh' .*not one the reference interpreter runs"):
        run_op(tmp_path, lambda x: mb.tanh(x=x), x=rnd(1, 4))


def test_corrupt_packages_get_one_clear_line(tmp_path):
    p, _ = run_op(tmp_path, lambda x: mb.add(x=x, y=rnd(40, 40, seed=1)), x=rnd(40, 40))
    weights = p.path / "Data/com.apple.CoreML/weights/weight.bin"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="truncated weights"):
        Program(p.path)
    spec = p.path / "Data/com.apple.CoreML/model.mlmodel"
    spec.write_bytes(spec.read_bytes()[:50])
    with pytest.raises(ArtifactError, match="not a Core ML model specification"):
        Program(p.path)
    with pytest.raises(ArtifactError, match="not an ML Program package"):
        Program(tmp_path)


def test_wrong_input_shape_is_named(tmp_path):
    p, _ = run_op(tmp_path, lambda x: mb.sqrt(x=x), x=np.ones((1, 3), np.float32))
    with pytest.raises(ArtifactError, match=r"input 'x' of shape \[1, 4\]; the program takes \[1, 3\]"):
        p.run({"x": np.ones((1, 4), np.float32)})
