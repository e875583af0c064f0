"""The export form: AnyIR rewritten, weight for weight, into operations every mobile converter takes.

`export_form(model)` derives it from a trained eager model; training never sees it. Each rewrite is an
identity of the math, not an approximation (tests check the two forms agree to 1e-5 relative):

* Frequency fusion: irfft2(rfft2(a) + rfft2(g)) == a + g, so no FFT or complex tensor is left.
* The strided channel split (x[:, 0::2] / x[:, 1::2]) becomes two dense 1x1 convolutions whose weight
  rows each hold one nonzero (the LayerNorm's affine, folded in). A grouped conv with two inputs per group
  would do 8x fewer MACs at full resolution, but XNNPACK runs it as one tiny GEMM per group: the dense
  form made the fp32 `.pte` about 8% faster.
* The fusion lam * cat(s1, s2) + (1 - lam) * repeat_interleave(att + gate, 2) followed by project_out is
  one 1x1 convolution over cat(s1, s2, att + gate) with lam and the repeat folded into its weights: no
  scalar multiply (which XNNPACK can only run in NCHW, so it cost two full-map transposes per block), no
  repeat conv and no add.
* LayerNorm over channels: the mean and variance over C are 1x1 convolutions with weights 1/C (a
  reduction over the channel axis that delegates everywhere); its affine is folded into the next convs.
* BatchNorm (inference form) is folded into the GatedDA's expansion conv; the statistics that read
  the normalised map are taken from the raw map and corrected by the BatchNorm's scale and shift.
* Chunks/splits of conv outputs become separate convolutions on slices of the weights.
* `F.normalize` becomes rsqrt of a clamped spatial mean of squares (q*q, not pow); the attention
  temperature rides on q's per-channel scale; matmuls are 3-D `bmm`s with batch*heads folded.
* `tau_adj.repeat(...)[:, :alpha]` becomes a fixed 0/1 1x1 convolution on the 1x1 statistics map.

Contract: inputs are NCHW float RGB with H and W multiples of 8 (callers reflect-pad and crop, as
`anyir_core.pad_to_multiple` does); the batch dimension may be symbolic, every other size is static.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import AnyIRError
from .model import DAB, SIZE_MULTIPLE, AnyIR, ChannelLayerNorm, GatedDA, SpatialFrequencyAttention


def _conv1x1(weight: torch.Tensor, bias: torch.Tensor | None, groups: int = 1) -> nn.Conv2d:
    out_ch, in_per_group = weight.shape[:2]
    conv = nn.Conv2d(in_per_group * groups, out_ch, 1, groups=groups, bias=bias is not None)
    conv.weight.data.copy_(weight.reshape(out_ch, in_per_group, 1, 1))
    if bias is not None:
        conv.bias.data.copy_(bias)
    return conv


def _conv_rows(conv: nn.Conv2d, start: int, stop: int) -> nn.Conv2d:
    """A conv computing output channels [start, stop) of `conv` (depthwise convs slice their groups too)."""
    depthwise = conv.groups == conv.in_channels and conv.groups > 1
    n = stop - start
    new = nn.Conv2d(n if depthwise else conv.in_channels, n, conv.kernel_size, conv.stride, conv.padding,
                    groups=n if depthwise else 1, bias=conv.bias is not None)
    new.weight.data.copy_(conv.weight.data[start:stop])
    if conv.bias is not None:
        new.bias.data.copy_(conv.bias.data[start:stop])
    return new


def _fold_input_affine(conv: nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor | None) -> nn.Conv2d:
    """conv(x * scale + shift) as one 1x1 conv on x."""
    w = conv.weight.data[:, :, 0, 0]
    bias = conv.bias.data.clone() if conv.bias is not None else torch.zeros(w.shape[0])
    if shift is not None:
        bias = bias + w @ shift
    return _conv1x1(w * scale[None, :], bias)


class ChannelNormalize(nn.Module):
    """LayerNorm over channels without its affine (folded downstream); means are 1x1 convs."""

    def __init__(self, dim: int, subtract_mean: bool, eps: float):
        super().__init__()
        self.subtract_mean = subtract_mean
        self.eps = eps
        self.register_buffer("mean_weight", torch.full((1, dim, 1, 1), 1.0 / dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x - F.conv2d(x, self.mean_weight)
        var = F.conv2d(d * d, self.mean_weight)
        return (d if self.subtract_mean else x) * torch.rsqrt(var + self.eps)


def _pick_every_other(dim: int, offset: int, scale: torch.Tensor, shift: torch.Tensor | None) -> nn.Conv2d:
    """1x1 conv: output i = scale[2i+offset] * x[2i+offset] + shift[2i+offset] (one nonzero weight per row)."""
    half = dim // 2
    rows = torch.arange(half)
    w = torch.zeros(half, dim)
    w[rows, 2 * rows + offset] = scale[offset::2]
    bias = shift[offset::2].clone() if shift is not None else None
    return _conv1x1(w, bias)


class GateStatistics(nn.Module):
    """The GatedDA's degradation descriptor sigmoid(BN(mu) + BN-scaled std), per image and channel.

    BatchNorm is affine per channel, so the statistics of the normalised map are those of the raw map
    scaled by |s| (std) and scaled-and-shifted (mean): no normalised map is ever materialised."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor, eps: float):
        super().__init__()
        self.register_buffer("bn_scale", scale.view(1, -1, 1, 1).clone())
        self.register_buffer("bn_shift", shift.view(1, -1, 1, 1).clone())
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(dim=(2, 3), keepdim=True)
        d = x - mu
        var = (d * d).mean(dim=(2, 3), keepdim=True)
        s = self.bn_scale
        return torch.sigmoid(mu * s + self.bn_shift + torch.sqrt(var * (s * s) + self.eps))


class UnitRows(nn.Module):
    """t / max(||t||, 1e-12) over H*W per channel (F.normalize), times an optional per-channel scale.

    Written as rsqrt of a clamped spatial *mean* of squares times 1/sqrt(HW), a trace-time constant:
    delegable, and no sum over H*W that could overflow fp16."""

    def forward(self, t: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        hw = t.shape[-2] * t.shape[-1]
        inv = torch.rsqrt(torch.clamp((t * t).mean(dim=(2, 3), keepdim=True), min=1e-24 / hw)) * (hw ** -0.5)
        return t * (inv if scale is None else inv * scale)


class ExportGatedDA(nn.Module):
    def __init__(self, g: GatedDA):
        super().__init__()
        bn = g.norm
        s = (bn.weight.data / torch.sqrt(bn.running_var + bn.eps))
        t = bn.bias.data - bn.running_mean * s
        self.stats = GateStatistics(s, t, g.eps)
        dim, _, alpha = g.split_sizes
        folded = _fold_input_affine(g.W_exp, s, t)
        self.to_gamma = _conv_rows(folded, 0, dim)
        self.to_beta = _conv_rows(folded, dim, 2 * dim)
        self.to_alpha = _conv_rows(folded, 2 * dim, 2 * dim + alpha)
        self.W_depth = copy.deepcopy(g.W_depth)
        self.W_gate = copy.deepcopy(g.W_gate)
        self.W_proj = copy.deepcopy(g.W_proj)
        self.tau = nn.Parameter(g.tau.data.clone())
        tile = torch.zeros(alpha, dim, 1, 1)
        tile[torch.arange(alpha), torch.arange(alpha) % dim] = 1.0
        self.register_buffer("tile_weight", tile)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        modulation = 1.0 + F.conv2d(self.tau * self.stats(x), self.tile_weight)
        alpha = self.W_depth(self.to_alpha(x)) * modulation
        gated = torch.sigmoid(self.to_gamma(x)) * self.W_gate(torch.cat([self.to_beta(x), alpha], dim=1))
        return self.W_proj(gated + x)


class ExportAttention(nn.Module):
    """Takes the *un-affined* normalised map; LayerNorm's affine lives in the channel pickers."""

    def __init__(self, a: SpatialFrequencyAttention, ln_weight: torch.Tensor, ln_bias: torch.Tensor | None):
        super().__init__()
        dim = a.project_out.in_channels
        half = dim // 2
        self.heads = a.num_heads
        self.pick_att = _pick_every_other(dim, 0, ln_weight, ln_bias)
        self.pick_gate = _pick_every_other(dim, 1, ln_weight, ln_bias)
        self.to_q, self.to_k, self.to_v = (
            nn.Sequential(_conv_rows(a.qkv, i * half, (i + 1) * half), _conv_rows(a.qkv_dwconv, i * half, (i + 1) * half))
            for i in range(3)
        )
        # per-head temperature, stored per channel so that it rides on q's scale with no reshapes
        self.temperature = nn.Parameter(a.temperature.data.reshape(-1).repeat_interleave(half // a.num_heads)
                                        .reshape(1, half, 1, 1).clone())
        self.unit_q, self.unit_k = UnitRows(), UnitRows()
        self.gated = ExportGatedDA(a.gatedcnn)
        # project_out(lam * cat(s1, s2) + (1 - lam) * repeat_interleave(f, 2)), f = att + gate, is one conv
        # over cat(s1, s2, f): weights lam * W on the spatial halves, (1 - lam) * (W[:, 0::2] + W[:, 1::2]) on f
        lam = float(a.lam)
        w = a.project_out.weight.data[:, :, 0, 0]
        bias = a.project_out.bias.data if a.project_out.bias is not None else None
        self.fuse_out = _conv1x1(torch.cat([lam * w, (1.0 - lam) * (w[:, 0::2] + w[:, 1::2])], dim=1), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_att = self.pick_att(x)
        _, half, h, w = x_att.shape
        c = half // self.heads
        q = self.unit_q(self.to_q(x_att), self.temperature).reshape(-1, c, h * w)
        k = self.unit_k(self.to_k(x_att)).reshape(-1, c, h * w)
        v = self.to_v(x_att).reshape(-1, c, h * w)
        attn = torch.softmax(torch.bmm(q, k.permute(0, 2, 1)), dim=-1)
        att = torch.bmm(attn, v).reshape(-1, half, h, w)
        gate = self.gated(self.pick_gate(x))
        return self.fuse_out(torch.cat([att + torch.sigmoid(gate), gate + torch.sigmoid(att), att + gate], dim=1))


class ExportFFN(nn.Module):
    def __init__(self, ffn, ln_weight: torch.Tensor, ln_bias: torch.Tensor | None):
        super().__init__()
        folded = _fold_input_affine(ffn.project_in, ln_weight, ln_bias)
        hidden = ffn.project_out.in_channels
        self.to_x1 = nn.Sequential(_conv_rows(folded, 0, hidden), _conv_rows(ffn.dwconv, 0, hidden))
        self.to_x2 = nn.Sequential(_conv_rows(folded, hidden, 2 * hidden), _conv_rows(ffn.dwconv, hidden, 2 * hidden))
        self.project_out = copy.deepcopy(ffn.project_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project_out(F.gelu(self.to_x1(x)) * self.to_x2(x))


def _norm_parts(n: ChannelLayerNorm):
    dim = n.body.weight.shape[0]
    bias = n.body.bias.data if n.with_bias else None
    return ChannelNormalize(dim, n.with_bias, n.eps), n.body.weight.data, bias


class ExportDAB(nn.Module):
    def __init__(self, block: DAB):
        super().__init__()
        self.norm1, w1, b1 = _norm_parts(block.norm1)
        self.attn = ExportAttention(block.attn, w1, b1)
        self.norm2, w2, b2 = _norm_parts(block.norm2)
        self.ffn = ExportFFN(block.ffn, w2, b2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class AnyIRExport(nn.Module):
    """AnyIR in export form. forward(x): x is [N, 3, H, W] with H, W multiples of 8."""

    def __init__(self, model: AnyIR):
        super().__init__()
        self.config = model.config
        self.net = copy.deepcopy(model).eval()
        for stage in (self.net.encoder_level1, self.net.encoder_level2, self.net.encoder_level3, self.net.latent,
                      self.net.decoder_level3, self.net.decoder_level2, self.net.decoder_level1,
                      self.net.refinement):
            for i, block in enumerate(stage):
                stage[i] = ExportDAB(block)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise AnyIRError(
                f"the export form takes H and W that are multiples of {SIZE_MULTIPLE}, got {h}x{w};"
                " pad with anyir_core.pad_to_multiple and crop the output"
            )
        return self.net.forward_unpadded(x)


# Per-image statistics (means, variances, norms and what reads them): int8 quantizers leave these float.
STATISTICS_MODULES = (ChannelNormalize, GateStatistics, UnitRows)


@torch.no_grad()
def export_form(model: AnyIR) -> AnyIRExport:
    """The export form of `model` (inference semantics: BatchNorm uses its running statistics)."""
    if isinstance(model, AnyIRExport):
        return model
    if not isinstance(model, AnyIR):
        raise AnyIRError(f"export_form takes an AnyIR model, not {type(model).__name__}")
    return AnyIRExport(model)
