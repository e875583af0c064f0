"""The shared model: faithful to the released code, and an export form equal to it."""
from pathlib import Path

import pytest
import torch

from anyir_core import AnyIRError, create_model, export_form, pad_to_multiple
from anyir_core.model import frequency_fusion, frequency_fusion_exact
from conftest import random_model
from released_reference import released_forward

KEYS = Path(__file__).parent / "data" / "released_anyir_keys.txt"


def rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max())


def test_state_dict_matches_released_key_list():
    expected = {}
    for line in KEYS.read_text().splitlines():
        key, shape = line.split("\t")
        expected[key] = tuple(int(s) for s in shape.split(",") if s)
    sd = create_model("anyir").state_dict()
    assert len(expected) == 825
    got = {k: tuple(v.shape) for k, v in sd.items()}
    assert sorted(got) == sorted(expected)
    assert got == expected


def test_parameter_counts_of_released_presets():
    assert sum(p.numel() for p in create_model("anyir").parameters()) == 5_736_376
    assert sum(p.numel() for p in create_model("anyir-dim32").parameters()) == 8_513_436


@pytest.mark.parametrize("layernorm_type", ["WithBias", "BiasFree"])
def test_eager_model_equals_independent_released_forward(layernorm_type):
    model = random_model(seed=1, layernorm_type=layernorm_type)
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        ours = model.forward_unpadded(x)
        ref = released_forward(model.state_dict(), x)
    assert rel_err(ours, ref) < 1e-5


def test_fft_free_fusion_equals_fft_fusion():
    g = torch.Generator().manual_seed(0)
    for h, w in [(8, 8), (9, 14), (31, 17)]:  # odd sizes exercise irfft2's `s=`
        a, b = torch.randn(2, 6, h, w, generator=g), torch.randn(2, 6, h, w, generator=g)
        assert torch.allclose(frequency_fusion(a, b), frequency_fusion_exact(a, b), atol=1e-5)


def test_whole_model_without_fft_equals_with_fft(tiny):
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        a = tiny.set_fft(True)(x)
        b = tiny.set_fft(False)(x)
    tiny.set_fft(True)
    assert rel_err(b, a) < 1e-5


@pytest.mark.parametrize("size", [(64, 64), (96, 128), (256, 256)])
def test_export_form_equals_eager_released_preset(size):
    model = random_model("anyir", seed=2, scale=0.05)
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        assert rel_err(export_form(model)(x), model(x)) < 1e-5


def test_export_form_bias_variant_and_batch(tiny):
    model = random_model(seed=3, bias=True, layernorm_type="BiasFree")
    x = torch.rand(3, 3, 48, 40)
    with torch.no_grad():
        assert rel_err(export_form(model)(x), model(x)) < 1e-5


def test_export_form_exports_strict_and_runs(tiny):
    ef = export_form(tiny)
    x = torch.rand(1, 3, 64, 64)
    ep = torch.export.export(ef, (x,), strict=True)
    ops = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not any("fft" in o or "complex" in o or "batch_norm" in o or "layer_norm" in o
                   or "repeat" in o for o in ops), ops
    with torch.no_grad():
        assert rel_err(ep.module()(x), tiny(x)) < 1e-5


def test_export_form_keeps_to_the_shapes_xnnpack_runs_fast(tiny):
    """Measured on the default checkpoint (README): grouped 1x1 convs with two inputs per group run as
    one tiny GEMM per group, and a binary op with a 0-D or 1-D operand can only run in NCHW, so XNNPACK
    wraps it in two full-map transposes. Together they cost 22% of the .pte's time."""
    ep = torch.export.export(export_form(tiny), (torch.rand(1, 3, 64, 64),), strict=True)
    aten = torch.ops.aten
    convs = [n for n in ep.graph.nodes if n.target == aten.conv2d.default]
    assert convs
    for n in convs:
        groups = n.args[6] if len(n.args) > 6 else 1
        in_ch = n.args[0].meta["val"].shape[1]
        assert groups in (1, in_ch), f"{n.name}: {groups} groups of {in_ch // groups} input channels"
    for n in ep.graph.nodes:
        if n.target in (aten.mul.Tensor, aten.add.Tensor, aten.sub.Tensor, aten.div.Tensor):
            for a in n.args:
                if isinstance(a, torch.fx.Node):
                    assert a.meta["val"].dim() >= 2, f"{n.name}: operand {a.name} is {a.meta['val'].dim()}-D"


def test_export_form_rejects_sizes_not_multiple_of_8(tiny):
    with pytest.raises(AnyIRError, match="multiples of 8"):
        export_form(tiny)(torch.rand(1, 3, 30, 32))


def test_padding_entry_point(tiny):
    x = torch.rand(1, 3, 37, 50)
    with torch.no_grad():
        y = tiny(x)
        padded, _ = pad_to_multiple(x)
        ref = tiny.forward_unpadded(padded)[..., :37, :50]
    assert y.shape == x.shape and torch.equal(y, ref)
    assert padded.shape[-2:] == (40, 56)
    # tiny inputs cannot reflect-pad more than their size: replicate instead, still cropped back
    with torch.no_grad():
        assert tiny(torch.rand(1, 3, 3, 5)).shape == (1, 3, 3, 5)


def test_unknown_preset_and_bad_overrides():
    with pytest.raises(AnyIRError, match="unknown preset"):
        create_model("anyir-huge")
    with pytest.raises(AnyIRError, match="heads"):
        create_model("anyir-tiny", dim=7)
    with pytest.raises(AnyIRError, match="unknown model option"):
        create_model("anyir", depth=3)
