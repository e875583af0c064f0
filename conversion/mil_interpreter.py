"""A reference interpreter for Core ML ML Programs, in numpy.

Core ML converts on Linux but executes only on Apple hardware. This module executes what the
converter wrote, independently of it: it reads the saved `.mlpackage` (the program in
`Data/com.apple.CoreML/model.mlmodel` through coremltools' protobuf classes, the weights from the
`weights/*.bin` blob files with its own reader) and runs the main function op by op with numpy.

Precision follows the program: every tensor is held at the dtype the program declares for it, so an
fp16 program rounds to fp16 after every op (elementwise ops are computed in fp32 and rounded once,
which gives the correctly rounded fp16 result); convolutions, matmuls and reductions accumulate in
fp32 before that rounding (the op definitions leave the accumulation precision to the device).
Quantize rounds half to even and saturates to the output dtype's range.

Only the ops in `OPS` run; a program holding any other op is refused by name when it is loaded.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from .base import ArtifactError


class UnsupportedOp(ArtifactError):
    """The program holds an op the reference interpreter does not implement."""


SPEC_FILE = Path("Data/com.apple.CoreML/model.mlmodel")

# MIL DataType name -> numpy dtype
_DTYPES = {"FLOAT16": np.float16, "FLOAT32": np.float32, "FLOAT64": np.float64, "BOOL": np.bool_,
           "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
           "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64}
# blob storage dtype codes (the weight file's per-blob metadata) -> numpy dtype
BLOB_DTYPES = {1: np.float16, 2: np.float32, 3: np.uint8, 4: np.int8, 6: np.int16, 7: np.uint16,
               14: np.int32, 15: np.uint32}
_BLOB_SENTINEL = 0xDEADBEEF
_STRING_DTYPES = {"fp16": np.float16, "fp32": np.float32, "int8": np.int8, "uint8": np.uint8,
                  "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "bool": np.bool_}


# ---------------------------------------------------------------------------------------------
# reading the package


def read_blob(path: Path, offset: int, cache: dict | None = None) -> np.ndarray:
    """One blob of a weight file: 64-byte metadata at `offset` (sentinel, dtype code, byte size,
    data offset), then the raw little-endian data."""
    data = cache.get(path) if cache is not None else None
    if data is None:
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as e:
            raise ArtifactError(f"weight file {path} cannot be read ({e})") from None
        if cache is not None:
            cache[path] = data
    if offset + 64 > data.size:
        raise ArtifactError(f"{path}: blob offset {offset} lies beyond the file ({data.size} bytes): truncated weights")
    sentinel, code = data[offset:offset + 8].view("<u4")
    size, start = data[offset + 8:offset + 24].view("<u8")
    if sentinel != _BLOB_SENTINEL:
        raise ArtifactError(f"{path}: no blob at offset {offset} (bad sentinel): corrupt weights")
    if int(code) not in BLOB_DTYPES:
        raise UnsupportedOp(f"{path}: blob at {offset} has storage dtype code {int(code)}, which the interpreter does not read")
    if int(start) + int(size) > data.size:
        raise ArtifactError(f"{path}: blob at {offset} runs past the end of the file: truncated weights")
    return data[int(start):int(start) + int(size)].view(BLOB_DTYPES[int(code)])


def _tensor_type(vtype) -> tuple[type, list[int] | None]:
    from coremltools.proto import MIL_pb2

    kind = vtype.WhichOneof("type")
    if kind != "tensorType":
        raise UnsupportedOp(f"value of type {kind} (only tensors are supported)")
    tt = vtype.tensorType
    name = MIL_pb2.DataType.Name(tt.dataType)
    if name == "STRING":
        dtype = object
    elif name in _DTYPES:
        dtype = _DTYPES[name]
    else:
        raise UnsupportedOp(f"tensor dtype {name}")
    dims = []
    for d in tt.dimensions:
        if d.WhichOneof("dimension") != "constant":
            return dtype, None  # symbolic dimension: shape checked at run time only
        dims.append(int(d.constant.size))
    return dtype, dims


def decode_value(value, weights_dir: Path, cache: dict) -> np.ndarray | str:
    """A MIL Value (immediate or blob) as a numpy array (a str for a scalar string)."""
    dtype, dims = _tensor_type(value.type)
    kind = value.WhichOneof("value")
    if kind == "blobFileValue":
        name = value.blobFileValue.fileName
        rel = name.split("@model_path/", 1)[-1]
        arr = read_blob(weights_dir.parent / rel, int(value.blobFileValue.offset), cache)
        if arr.dtype != np.dtype(dtype):
            raise ArtifactError(f"blob {name}@{value.blobFileValue.offset} holds {arr.dtype}, the program declares {np.dtype(dtype)}")
    elif kind == "immediateValue":
        imm = value.immediateValue
        if imm.WhichOneof("value") != "tensor":
            raise UnsupportedOp(f"immediate {imm.WhichOneof('value')} values")
        t = imm.tensor
        which = t.WhichOneof("value")
        if which == "strings":
            vals = list(t.strings.values)
            return vals[0] if not dims else np.array(vals, dtype=object).reshape(dims)
        if which == "bytes":
            arr = np.frombuffer(t.bytes.values, dtype=dtype)
        elif which is None:
            arr = np.zeros(0, dtype=dtype)
        else:
            arr = np.array(list(getattr(t, which).values)).astype(dtype)
    else:
        raise UnsupportedOp(f"value kind {kind}")
    if dims is not None:
        if arr.size != int(np.prod(dims)):
            raise ArtifactError(f"value holds {arr.size} elements, its type declares shape {dims}")
        arr = arr.reshape(dims)
    return arr


def load_spec(package: str | Path):
    """The Model protobuf of a `.mlpackage` (or of a bare `.mlmodel` file)."""
    from coremltools.proto import Model_pb2

    p = Path(package)
    spec_file = p / SPEC_FILE if p.is_dir() else p
    if not spec_file.is_file():
        raise ArtifactError(f"{p}: not an ML Program package (no {SPEC_FILE})")
    spec = Model_pb2.Model()
    try:
        spec.ParseFromString(spec_file.read_bytes())
    except Exception as e:  # protobuf's DecodeError and friends
        raise ArtifactError(f"{spec_file}: not a Core ML model specification ({type(e).__name__}: {e})") from None
    if spec.WhichOneof("Type") != "mlProgram":
        raise ArtifactError(f"{p}: a {spec.WhichOneof('Type')} model, not an ML Program")
    return spec


def op_types(package: str | Path) -> Counter:
    """How many ops of each type the main function of a package holds."""
    spec = load_spec(package)
    fn = spec.mlProgram.functions["main"]
    return Counter(op.type for op in fn.block_specializations[fn.opset].operations)


# ---------------------------------------------------------------------------------------------
# the ops. Each takes its inputs as numpy arrays (floats upcast to fp32) / python scalars / str
# and returns one array; the interpreter then rounds it to the dtype the program declares.


def _scalar(v):
    return v.item() if isinstance(v, np.ndarray) else v


def _ints(v) -> list[int]:
    return [int(i) for i in np.asarray(v).reshape(-1)]


def op_conv(x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    g = int(_scalar(groups))
    sh, sw = _ints(strides) if strides is not None else (1, 1)
    dh, dw = _ints(dilations) if dilations is not None else (1, 1)
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if pad_type == "valid":
        pt = pb = pl = pr = 0
    elif pad_type == "custom":
        pt, pb, pl, pr = _ints(pad)
    elif pad_type in ("same", "same_lower"):
        ph = max((-(-h // sh) - 1) * sh + eh - h, 0)
        pw = max((-(-w // sw) - 1) * sw + ew - w, 0)
        small_first = pad_type == "same"  # "same": the extra pixel goes to the end
        pt, pb = (ph // 2, ph - ph // 2) if small_first else (ph - ph // 2, ph // 2)
        pl, pr = (pw // 2, pw - pw // 2) if small_first else (pw - pw // 2, pw // 2)
    else:
        raise UnsupportedOp(f"conv pad_type {pad_type!r}")
    if c != cg * g or o % g:
        raise ArtifactError(f"conv: input has {c} channels, weight {tuple(weight.shape)} with groups={g}")
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr))) if pt or pb or pl or pr else x
    ho, wo = (xp.shape[2] - eh) // sh + 1, (xp.shape[3] - ew) // sw + 1
    og = o // g
    out = np.zeros((n, o, ho, wo), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            xs = xp[:, :, i * dh:i * dh + (ho - 1) * sh + 1:sh, j * dw:j * dw + (wo - 1) * sw + 1:sw]
            if cg == 1:  # depthwise (channel multiplier og): a per-channel scale of the shifted input
                src = np.repeat(xs, og, axis=1) if og > 1 else xs
                out += src * weight[:, 0, i, j][None, :, None, None]
            else:        # per group: (og x cg) @ (cg x ho*wo), batched over groups
                xg = np.ascontiguousarray(xs).reshape(n, g, cg, ho * wo)
                out += np.matmul(weight[:, :, i, j].reshape(g, og, cg), xg).reshape(n, o, ho, wo)
    if bias is not None:
        out += bias.reshape(1, o, 1, 1)
    return out


def op_matmul(x, y, transpose_x=False, transpose_y=False):
    if _scalar(transpose_x):
        x = np.swapaxes(x, -1, -2)
    if _scalar(transpose_y):
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


def op_reduce_mean(x, axes=None, keep_dims=False):
    axes = tuple(_ints(axes)) if axes is not None else None
    return np.mean(x, axis=axes, keepdims=bool(_scalar(keep_dims)), dtype=np.float32)


def op_rsqrt(x, epsilon=1e-12):
    return 1.0 / np.sqrt(x + np.float32(_scalar(epsilon)))


def op_sigmoid(x):
    with np.errstate(over="ignore"):
        return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


def op_softmax(x, axis=-1):
    a = int(_scalar(axis))
    e = np.exp(x - x.max(axis=a, keepdims=True))
    return e / e.sum(axis=a, keepdims=True)


def op_gelu(x, mode="EXACT"):
    if mode == "EXACT":
        from scipy.special import erf
        return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x * op_sigmoid(1.702 * x)
    raise UnsupportedOp(f"gelu mode {mode!r}")


def op_batch_norm(x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / np.sqrt(variance.reshape(shape) + np.float32(_scalar(epsilon)))
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


def op_reshape(x, shape):
    dims = _ints(shape)
    if 0 in dims:
        raise UnsupportedOp("reshape with a 0 in its shape")
    return x.reshape(dims)


def op_concat(values, axis, interleave=False):
    a = int(_scalar(axis))
    if _scalar(interleave):
        stacked = np.stack(values, axis=(a % values[0].ndim) + 1)
        shape = list(values[0].shape)
        shape[a] *= len(values)
        return stacked.reshape(shape)
    return np.concatenate(values, axis=a)


def op_pixel_shuffle(x, upscale_factor):
    r = int(_scalar(upscale_factor))
    n, c, h, w = x.shape
    return x.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(n, c // (r * r), h * r, w * r)


def op_pixel_unshuffle(x, downscale_factor):
    r = int(_scalar(downscale_factor))
    n, c, h, w = x.shape
    return x.reshape(n, c, h // r, r, w // r, r).transpose(0, 1, 3, 5, 2, 4).reshape(n, c * r * r, h // r, w // r)


def _per_axis(v, axis, ndim):
    v = np.asarray(v)
    if v.ndim == 0 or v.size == 1:
        return v.reshape(())
    shape = [1] * ndim
    shape[int(axis) % ndim] = v.size
    return v.reshape(shape)


def op_quantize(input, scale, output_dtype, zero_point=None, axis=None):
    dtype = _STRING_DTYPES.get(output_dtype)
    if dtype not in (np.int8, np.uint8):
        raise UnsupportedOp(f"quantize to {output_dtype!r}")
    ax = _scalar(axis) if axis is not None else 0
    q = np.divide(input, _per_axis(scale, ax, input.ndim).astype(np.float32), dtype=np.float32)
    np.rint(q, out=q)
    if zero_point is not None:
        q += _per_axis(zero_point, ax, input.ndim).astype(np.float32)
    info = np.iinfo(dtype)
    np.clip(q, info.min, info.max, out=q)
    return q.astype(dtype)


def op_dequantize(input, scale, zero_point=None, axis=None):
    ax = _scalar(axis) if axis is not None else 0
    x = input.astype(np.float32)
    if zero_point is not None:
        x = x - _per_axis(zero_point, ax, input.ndim).astype(np.float32)
    return x * _per_axis(scale, ax, input.ndim).astype(np.float32)


def op_constexpr_affine_dequantize(quantized_data, zero_point, scale, axis):
    return op_dequantize(quantized_data, scale, zero_point, axis)


def op_cast(x, dtype):
    if dtype not in _STRING_DTYPES:
        raise UnsupportedOp(f"cast to {dtype!r}")
    target = _STRING_DTYPES[dtype]
    if np.issubdtype(target, np.integer) and not np.issubdtype(np.asarray(x).dtype, np.integer):
        info = np.iinfo(target)
        return np.clip(np.trunc(x), info.min, info.max).astype(target)
    return x.astype(target)


def op_transpose(x, perm):
    return np.transpose(x, _ints(perm))


OPS = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "real_div": lambda x, y: x / y,
    "sqrt": lambda x: np.sqrt(x),
    "rsqrt": op_rsqrt,
    "sigmoid": op_sigmoid,
    "gelu": op_gelu,
    "clip": lambda x, alpha, beta: np.minimum(np.maximum(x, alpha), beta),
    "softmax": op_softmax,
    "reduce_mean": op_reduce_mean,
    "batch_norm": op_batch_norm,
    "conv": op_conv,
    "matmul": op_matmul,
    "reshape": op_reshape,
    "transpose": op_transpose,
    "concat": op_concat,
    "pixel_shuffle": op_pixel_shuffle,
    "pixel_unshuffle": op_pixel_unshuffle,
    "cast": op_cast,
    "quantize": op_quantize,
    "dequantize": op_dequantize,
    "constexpr_affine_dequantize": op_constexpr_affine_dequantize,
}
# ops evaluated once when the program is loaded (their inputs are attributes, not tensors)
CONST_OPS = {"const", "constexpr_affine_dequantize"}
SUPPORTED_OPS = sorted(set(OPS) | {"const"})


# ---------------------------------------------------------------------------------------------
# the program


class Program:
    """A loaded ML Program's main function, ready to run with numpy."""

    def __init__(self, package: str | Path, function: str = "main"):
        self.path = Path(package)
        self.spec = load_spec(self.path)
        fns = self.spec.mlProgram.functions
        if function not in fns:
            raise ArtifactError(f"{self.path}: no function {function!r} (it has {', '.join(fns)})")
        fn = fns[function]
        self.opset = fn.opset
        block = fn.block_specializations[fn.opset]
        unknown = sorted({op.type for op in block.operations} - set(SUPPORTED_OPS))
        if unknown:
            first = next(op for op in block.operations if op.type == unknown[0])
            raise UnsupportedOp(f"{self.path.name}: op {unknown[0]!r} (first as {first.outputs[0].name!r}) is not one the "
                                f"reference interpreter runs" + (f" (also: {', '.join(unknown[1:])})" if unknown[1:] else "")
                                + f"; it runs {', '.join(SUPPORTED_OPS)}")
        if any(len(op.blocks) for op in block.operations):
            raise UnsupportedOp(f"{self.path.name}: ops with nested blocks (control flow)")
        self.inputs = {}
        for nv in fn.inputs:
            self.inputs[nv.name] = _tensor_type(nv.type)
        self.outputs = list(block.outputs)
        declared = {o.name: o.type for op in block.operations for o in op.outputs}
        self.output_types = {k: _tensor_type(declared[k]) if k in declared else self.inputs[k] for k in self.outputs}
        weights_dir = self.path / "Data/com.apple.CoreML/weights"
        cache: dict = {}
        self.consts: dict[str, object] = {}
        self.ops = []
        for op in block.operations:
            out = op.outputs[0]
            if op.type == "const":
                self.consts[out.name] = decode_value(op.attributes["val"], weights_dir, cache)
            elif op.type in CONST_OPS:
                attrs = {k: decode_value(v, weights_dir, cache) for k, v in op.attributes.items() if k != "name"}
                self.consts[out.name] = self._finish(op.type, OPS[op.type](**attrs), _tensor_type(out.type), out.name)
            else:
                args = {}
                for pname, arg in op.inputs.items():
                    vals = [b.name if b.WhichOneof("binding") == "name" else _held(decode_value(b.value, weights_dir, cache))
                            for b in arg.arguments]
                    args[pname] = vals
                self.ops.append((op.type, args, out.name, _tensor_type(out.type), len(op.outputs)))
        if any(n > 1 for *_, n in self.ops):
            raise UnsupportedOp(f"{self.path.name}: ops with several outputs")
        self._held_consts = {k: _held(v) if isinstance(v, np.ndarray) else v for k, v in self.consts.items()}
        # free each intermediate after its last reader (a 256 tile's ~1,400 intermediates would hold gigabytes)
        last = {}
        for i, (_, args, _, _, _) in enumerate(self.ops):
            for vals in args.values():
                for v in vals:
                    if isinstance(v, str) and v not in self.consts:
                        last[v] = i
        self._free_after = [[] for _ in self.ops]
        for name, i in last.items():
            if name not in self.outputs:
                self._free_after[i].append(name)
        self.declared = {**{k: d for k, (d, _) in self.inputs.items()},
                         **{k: np.asarray(v).dtype for k, v in self.consts.items() if isinstance(v, np.ndarray)},
                         **{name: t[0] for _, _, name, t, _ in self.ops}}

    @staticmethod
    def _finish(op_type: str, value, out_type: tuple, name: str):
        dtype, dims = out_type
        value = np.asarray(value)
        if dims is not None and list(value.shape) != dims:
            raise ArtifactError(f"{op_type} {name}: computed shape "
                                f"{list(value.shape)}, the program declares {dims}")
        return value.astype(dtype, copy=False) if dtype is not object else value

    def outputs_dtype(self, name: str):
        return self.output_types[name][0]

    def run(self, feeds: dict[str, np.ndarray], keep: bool = False) -> dict[str, np.ndarray]:
        """Run the main function. `feeds` maps input names to arrays (cast to the declared dtype).
        Returns the outputs (every intermediate too when `keep`), at the dtypes the program declares."""
        missing = set(self.inputs) - set(feeds)
        if missing:
            raise ArtifactError(f"missing input(s) {', '.join(sorted(missing))}; the program takes {', '.join(self.inputs)}")
        env: dict[str, object] = dict(self._held_consts)
        for name, (dtype, dims) in self.inputs.items():
            x = np.asarray(feeds[name])
            if dims is not None and list(x.shape) != dims:
                raise ArtifactError(f"input {name!r} of shape {list(x.shape)}; the program takes {dims}")
            env[name] = _held(x.astype(dtype))
        for i, (op_type, args, out_name, out_type, _) in enumerate(self.ops):
            kwargs = {}
            for pname, vals in args.items():
                resolved = [env[v] if isinstance(v, str) else v for v in vals]
                kwargs[pname] = resolved if op_type == "concat" and pname == "values" else resolved[0]
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                value = OPS[op_type](**kwargs)
            env[out_name] = _held(self._finish(op_type, value, out_type, out_name))
            if not keep:
                for name in self._free_after[i]:
                    del env[name]
        if keep:
            return {k: _declared(v, self.declared.get(k)) for k, v in env.items() if isinstance(v, np.ndarray)}
        return {k: _declared(env[k], self.declared.get(k)) for k in self.outputs}


def _held(v):
    """How a value is held between ops: fp16 values as fp32 arrays (exact; rounded to fp16 after every op, so
    nothing of fp16's precision is lost or gained), 0-d strings as str, the rest as they are."""
    if isinstance(v, np.ndarray):
        if v.dtype == np.float16:
            return v.astype(np.float32)
        if v.ndim == 0 and v.dtype == object:
            return v.item()
    return v


def _declared(v, dtype):
    return v.astype(dtype) if dtype is not None and dtype is not object and v.dtype != dtype else v


def describe(package: str | Path) -> dict:
    """What the interpreter sees in a package: opset, inputs, outputs, op counts."""
    prog = Program(package)
    return {"opset": prog.opset, "inputs": {k: [np.dtype(d).name, dims] for k, (d, dims) in prog.inputs.items()},
            "outputs": prog.outputs,
            "ops": dict(sorted(Counter(op.type for op in prog.spec.mlProgram.functions["main"]
                                       .block_specializations[prog.opset].operations).items()))}


if __name__ == "__main__":  # python -m conversion.mil_interpreter PACKAGE: what it holds
    import sys

    print(json.dumps(describe(sys.argv[1]), indent=2))
