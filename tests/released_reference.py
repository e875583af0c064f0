"""An independent, functional re-statement of the released AnyIR forward pass (net/anyir.py, commit
098dcd1), reading weights straight from a state dict. It shares no code with anyir_core, so a wrong block
in either shows up as a mismatch (tests/test_model.py). Eval-mode semantics (BatchNorm running stats)."""
import math

import torch
import torch.nn.functional as F


def _conv(sd, name, x, padding=0, groups=1):
    return F.conv2d(x, sd[name + ".weight"], sd.get(name + ".bias"), padding=padding, groups=groups)


def _layernorm(sd, name, x):
    # Restormer: b c h w -> b (h w) c, normalise the last dim, back.
    b, c, h, w = x.shape
    t = x.flatten(2).transpose(1, 2)
    mu = t.mean(-1, keepdim=True)
    var = t.var(-1, keepdim=True, unbiased=False)
    if name + ".body.bias" in sd:
        t = (t - mu) / torch.sqrt(var + 1e-5) * sd[name + ".body.weight"] + sd[name + ".body.bias"]
    else:
        t = t / torch.sqrt(var + 1e-5) * sd[name + ".body.weight"]
    return t.transpose(1, 2).reshape(b, c, h, w)


def _gated(sd, p, x):
    f_hat = F.batch_norm(x, sd[p + ".norm.running_mean"], sd[p + ".norm.running_var"],
                         sd[p + ".norm.weight"], sd[p + ".norm.bias"], False, 0.0, 1e-5)
    mu = f_hat.mean(dim=(2, 3), keepdim=True)
    sigma = torch.sqrt(((f_hat - mu) ** 2).mean(dim=(2, 3), keepdim=True) + 1e-6)
    tau_adj = sd[p + ".tau"] * torch.sigmoid(mu + sigma)
    c = x.shape[1]
    hidden = sd[p + ".W_exp.weight"].shape[0]
    alpha_ch = hidden - 2 * c
    f = _conv(sd, p + ".W_exp", f_hat)
    gamma, beta, alpha = f[:, :c], f[:, c:2 * c], f[:, 2 * c:]
    alpha_dw = _conv(sd, p + ".W_depth", alpha, padding=3, groups=alpha_ch)
    reps = math.ceil(alpha_ch / c)
    tau_alpha = torch.cat([tau_adj] * reps, dim=1)[:, :alpha_ch]
    merged = torch.cat([beta, alpha_dw * (1.0 + tau_alpha)], dim=1)
    return _conv(sd, p + ".W_proj", torch.sigmoid(gamma) * _conv(sd, p + ".W_gate", merged) + x)


def _attention(sd, p, x, heads):
    x_att, x_gate = x[:, 0::2], x[:, 1::2]
    b, c, h, w = x_att.shape
    qkv = _conv(sd, p + ".qkv_dwconv", _conv(sd, p + ".qkv", x_att), padding=1, groups=3 * c)
    q, k, v = qkv[:, :c], qkv[:, c:2 * c], qkv[:, 2 * c:]
    split = lambda t: t.reshape(b, heads, c // heads, h * w)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    k = k / k.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    attn = torch.softmax(q @ k.transpose(-2, -1) * sd[p + ".temperature"], dim=-1)
    att = (attn @ v).reshape(b, c, h, w)
    gate = _gated(sd, p + ".gatedcnn", x_gate)
    fs = torch.cat([att + torch.sigmoid(gate), gate + torch.sigmoid(att)], dim=1)
    ff = torch.fft.irfft2(torch.fft.rfft2(att) + torch.fft.rfft2(gate), s=(h, w))
    ff = torch.stack([ff, ff], dim=2).reshape(b, 2 * c, h, w)  # repeat_interleave(2, dim=1)
    lam = sd[p + ".lam"]
    return _conv(sd, p + ".project_out", lam * fs + (1 - lam) * ff)


def _ffn(sd, p, x):
    y = _conv(sd, p + ".project_in", x)
    y = _conv(sd, p + ".dwconv", y, padding=1, groups=y.shape[1])
    n = y.shape[1] // 2
    return _conv(sd, p + ".project_out", F.gelu(y[:, :n]) * y[:, n:])


def _stage(sd, name, x, heads):
    i = 0
    while f"{name}.{i}.norm1.body.weight" in sd:
        p = f"{name}.{i}"
        x = x + _attention(sd, p + ".attn", _layernorm(sd, p + ".norm1", x), heads)
        x = x + _ffn(sd, p + ".ffn", _layernorm(sd, p + ".norm2", x))
        i += 1
    return x


def released_forward(sd: dict, img: torch.Tensor, heads=(1, 2, 4, 8)) -> torch.Tensor:
    e1 = _stage(sd, "encoder_level1", _conv(sd, "patch_embed.proj", img, padding=1), heads[0])
    e2 = _stage(sd, "encoder_level2", F.pixel_unshuffle(_conv(sd, "down1_2.body.0", e1, padding=1), 2), heads[1])
    e3 = _stage(sd, "encoder_level3", F.pixel_unshuffle(_conv(sd, "down2_3.body.0", e2, padding=1), 2), heads[2])
    z = _stage(sd, "latent", F.pixel_unshuffle(_conv(sd, "down3_4.body.0", e3, padding=1), 2), heads[3])
    z = _conv(sd, "reduce_dim_level3", z)
    d3 = torch.cat([F.pixel_shuffle(_conv(sd, "up4_3.body.0", z, padding=1), 2), e3], 1)
    d3 = _stage(sd, "decoder_level3", _conv(sd, "reduce_chan_level3", d3), heads[2])
    d2 = torch.cat([F.pixel_shuffle(_conv(sd, "up3_2.body.0", d3, padding=1), 2), e2], 1)
    d2 = _stage(sd, "decoder_level2", _conv(sd, "reduce_chan_level2", d2), heads[1])
    d1 = torch.cat([F.pixel_shuffle(_conv(sd, "up2_1.body.0", d2, padding=1), 2), e1], 1)
    d1 = _stage(sd, "refinement", _stage(sd, "decoder_level1", d1, heads[0]), heads[0])
    return _conv(sd, "output", d1, padding=1) + img
