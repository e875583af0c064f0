"""AnyIR, the eager model, written from the paper.

"Any Image Restoration via Efficient Spatial-Frequency Degradation Adaptation": a 4-level
Restormer-style U-Net whose blocks (DAB, Degradation-Adaptive Block) split their channels between
transposed channel attention and a Gated Degradation Adaptation (GatedDA) branch, then merge the two
with a Spatial-Frequency Fusion (SFF).

Class names follow the paper; attribute names follow the released code so that its state dict (825
entries for the default preset) loads unchanged.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .presets import AnyIRConfig

SIZE_MULTIPLE = 8  # three 2x downsamplings


class _LayerNormParams(nn.Module):
    """Holds the affine parameters under the released key names (`norm.body.weight`)."""

    def __init__(self, dim: int, with_bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if with_bias else None


class ChannelLayerNorm(nn.Module):
    """Restormer's LayerNorm: normalises over channels at every pixel (eps 1e-5).

    The bias-free variant divides by the standard deviation without removing the mean, as released.
    """

    eps = 1e-5

    def __init__(self, dim: int, layernorm_type: str = "WithBias"):
        super().__init__()
        self.with_bias = layernorm_type != "BiasFree"
        self.body = _LayerNormParams(dim, self.with_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = x.var(1, keepdim=True, unbiased=False)
        w = self.body.weight.view(1, -1, 1, 1)
        if self.with_bias:
            return (x - mu) / torch.sqrt(var + self.eps) * w + self.body.bias.view(1, -1, 1, 1)
        return x / torch.sqrt(var + self.eps) * w


class GatedDConvFFN(nn.Module):
    """Restormer's gated depthwise-conv feed-forward network."""

    def __init__(self, dim: int, expansion: float, bias: bool):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class GatedDA(nn.Module):
    """Gated Degradation Adaptation (paper Alg. 1).

    Per-channel spatial statistics of the normalised input (mean and std) set how strongly a
    large-kernel depthwise branch is amplified: the block adapts to the degradation it sees.
    """

    def __init__(self, dim: int, expansion: float = 8 / 3, kernel_size: int = 7, bias: bool = False,
                 eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        hidden = int(round(expansion * dim))
        alpha_ch = hidden - 2 * dim
        if alpha_ch <= 0:
            raise ValueError("GatedDA needs expansion > 2 so that gamma, beta and alpha all get channels")
        self.split_sizes = (dim, dim, alpha_ch)  # gamma, beta, alpha
        self.norm = nn.BatchNorm2d(dim)
        self.W_exp = nn.Conv2d(dim, hidden, 1, bias=bias)
        self.W_depth = nn.Conv2d(alpha_ch, alpha_ch, kernel_size, padding=kernel_size // 2,
                                 groups=alpha_ch, bias=bias)
        self.W_gate = nn.Conv2d(dim + alpha_ch, dim, 1, bias=bias)
        self.W_proj = nn.Conv2d(dim, dim, 1, bias=bias)
        self.tau = nn.Parameter(torch.ones(1, dim, 1, 1))

    def modulation(self, f_hat: torch.Tensor) -> torch.Tensor:
        """tau_adj = tau * sigmoid(mu + sigma), tiled over the alpha channels (released: repeat + crop)."""
        mu = f_hat.mean(dim=(2, 3), keepdim=True)
        var = ((f_hat - mu) ** 2).mean(dim=(2, 3), keepdim=True)
        tau_adj = self.tau * torch.sigmoid(mu + torch.sqrt(var + self.eps))
        alpha_ch = self.split_sizes[2]
        reps = math.ceil(alpha_ch / tau_adj.shape[1])
        return tau_adj.repeat(1, reps, 1, 1)[:, :alpha_ch]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f_hat = self.norm(x)
        gamma, beta, alpha = torch.split(self.W_exp(f_hat), self.split_sizes, dim=1)
        alpha = self.W_depth(alpha) * (1.0 + self.modulation(f_hat))
        gated = torch.sigmoid(gamma) * self.W_gate(torch.cat([beta, alpha], dim=1))
        return self.W_proj(gated + x)


def spatial_fusion(att: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """Cross-enhance each branch with the other's sigmoid, then concatenate (paper Alg. 2)."""
    return torch.cat([att + torch.sigmoid(gate), gate + torch.sigmoid(att)], dim=1)


def frequency_fusion(att: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """Sum the two branches in the Fourier domain and come back (paper Alg. 2), as released."""
    h, w = att.shape[-2:]
    spectrum = torch.fft.rfft2(att) + torch.fft.rfft2(gate)
    return torch.fft.irfft2(spectrum, s=(h, w)).repeat_interleave(2, dim=1)


def frequency_fusion_exact(att: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """What `frequency_fusion` computes, without the FFT.

    rfft2 is linear and nothing acts on the spectrum, so irfft2(rfft2(a) + rfft2(g)) = a + g for
    real inputs of the stated size; only rounding differs.
    """
    return (att + gate).repeat_interleave(2, dim=1)


class SpatialFrequencyAttention(nn.Module):
    """Channel-split mixer of the DAB: even channels -> transposed attention, odd -> GatedDA,
    merged by spatial-frequency fusion with a learnable balance `lam`."""

    def __init__(self, dim: int, num_heads: int, bias: bool, use_fft: bool = True):
        super().__init__()
        half = dim // 2
        self.num_heads = num_heads
        self.use_fft = use_fft
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(half, half * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(half * 3, half * 3, 3, padding=1, groups=half * 3, bias=bias)
        self.gatedcnn = GatedDA(half)  # the released code builds it bias-free whatever `bias` is
        self.lam = nn.Parameter(torch.tensor(0.5))
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def channel_attention(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (t.reshape(b, self.num_heads, c // self.num_heads, h * w) for t in (q, k, v))
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return (attn @ v).reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        att = self.channel_attention(x[:, 0::2])
        gate = self.gatedcnn(x[:, 1::2])
        fused_freq = frequency_fusion(att, gate) if self.use_fft else frequency_fusion_exact(att, gate)
        fused = self.lam * spatial_fusion(att, gate) + (1.0 - self.lam) * fused_freq
        return self.project_out(fused)


class DAB(nn.Module):
    """Degradation-Adaptive Block: pre-norm mixer and pre-norm gated FFN, each residual.

    (`TransformerBlock` in the released code.)"""

    def __init__(self, dim: int, num_heads: int, ffn_expansion: float, bias: bool, layernorm_type: str,
                 use_fft: bool = True):
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim, layernorm_type)
        self.attn = SpatialFrequencyAttention(dim, num_heads, bias, use_fft)
        self.norm2 = ChannelLayerNorm(dim, layernorm_type)
        self.ffn = GatedDConvFFN(dim, ffn_expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class _ConvEmbed(nn.Module):
    def __init__(self, cin: int, cout: int, bias: bool):
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 3, padding=1, bias=bias)

    def forward(self, x):
        return self.proj(x)


class Downsample(nn.Module):
    """3x3 conv C -> C/2, then PixelUnshuffle(2): half the resolution, twice the channels."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x):
        return self.body(x)


class Upsample(nn.Module):
    """3x3 conv C -> 2C, then PixelShuffle(2): twice the resolution, half the channels."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x):
        return self.body(x)


def pad_to_multiple(x: torch.Tensor, multiple: int = SIZE_MULTIPLE) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad bottom/right so H and W divide by `multiple` (replicate where reflect can't)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


class AnyIR(nn.Module):
    """The AnyIR U-Net. `forward` takes any H x W (reflect-padded to a multiple of 8 and cropped
    back); `forward_unpadded` is the released model's raw behaviour."""

    def __init__(self, config: AnyIRConfig = AnyIRConfig(), use_fft: bool = True):
        super().__init__()
        self.config = config
        c = config
        d1, d2, d3, d4 = c.dim, c.dim * 2, c.dim * 4, c.dim * 8

        def stage(width, heads, n):
            return nn.Sequential(*[
                DAB(width, heads, c.ffn_expansion_factor, c.bias, c.layernorm_type, use_fft) for _ in range(n)
            ])

        self.patch_embed = _ConvEmbed(c.inp_channels, d1, c.bias)
        self.encoder_level1 = stage(d1, c.heads[0], c.num_blocks[0])
        self.down1_2 = Downsample(d1)
        self.encoder_level2 = stage(d2, c.heads[1], c.num_blocks[1])
        self.down2_3 = Downsample(d2)
        self.encoder_level3 = stage(d3, c.heads[2], c.num_blocks[2])
        self.down3_4 = Downsample(d3)
        self.latent = stage(d4, c.heads[3], c.num_blocks[3])

        self.up4_3 = Upsample(d3)
        self.reduce_chan_level3 = nn.Conv2d(d2 + d3, d3, 1, bias=c.bias)
        self.reduce_dim_level3 = nn.Conv2d(d4, d3, 1, bias=c.bias)
        self.decoder_level3 = stage(d3, c.heads[2], c.num_blocks[2])
        self.up3_2 = Upsample(d3)
        self.reduce_chan_level2 = nn.Conv2d(d3, d2, 1, bias=c.bias)
        self.decoder_level2 = stage(d2, c.heads[1], c.num_blocks[1])
        self.up2_1 = Upsample(d2)
        self.decoder_level1 = stage(d2, c.heads[0], c.num_blocks[0])
        self.refinement = stage(d2, c.heads[0], c.num_refinement_blocks)
        self.output = nn.Conv2d(d2, c.out_channels, 3, padding=1, bias=c.bias)

    def set_fft(self, use_fft: bool) -> "AnyIR":
        for m in self.modules():
            if isinstance(m, SpatialFrequencyAttention):
                m.use_fft = use_fft
        return self

    def forward_unpadded(self, img: torch.Tensor) -> torch.Tensor:
        e1 = self.encoder_level1(self.patch_embed(img))
        e2 = self.encoder_level2(self.down1_2(e1))
        e3 = self.encoder_level3(self.down2_3(e2))
        z = self.reduce_dim_level3(self.latent(self.down3_4(e3)))
        d3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(z), e3], 1)))
        d2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(d3), e2], 1)))
        d1 = self.decoder_level1(torch.cat([self.up2_1(d2), e1], 1))
        return self.output(self.refinement(d1)) + img

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        padded, (h, w) = pad_to_multiple(img)
        return self.forward_unpadded(padded)[..., :h, :w]
