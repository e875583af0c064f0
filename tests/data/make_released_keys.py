"""Writes released_anyir_keys.txt: the state-dict keys and shapes of the released AnyIR (net/anyir.py,
commit 098dcd1) with its default arguments, derived from that code's layer definitions by hand here,
independently of anyir_core. Run: python tests/data/make_released_keys.py"""
from pathlib import Path

DIM, BLOCKS, REFINE, HEADS, FFN = 28, (3, 5, 5, 7), 4, (1, 2, 4, 8), 2


def block(prefix, c, heads):
    h = c // 2  # channels of each branch
    hidden = round(8 / 3 * h)
    alpha = hidden - 2 * h
    f = int(c * FFN)
    g = f"{prefix}.attn.gatedcnn"
    return [
        (f"{prefix}.norm1.body.weight", (c,)), (f"{prefix}.norm1.body.bias", (c,)),
        (f"{prefix}.attn.temperature", (heads, 1, 1)),
        (f"{prefix}.attn.lam", ()),
        (f"{prefix}.attn.qkv.weight", (3 * h, h, 1, 1)),
        (f"{prefix}.attn.qkv_dwconv.weight", (3 * h, 1, 3, 3)),
        (f"{g}.tau", (1, h, 1, 1)),
        (f"{g}.norm.weight", (h,)), (f"{g}.norm.bias", (h,)),
        (f"{g}.norm.running_mean", (h,)), (f"{g}.norm.running_var", (h,)), (f"{g}.norm.num_batches_tracked", ()),
        (f"{g}.W_exp.weight", (hidden, h, 1, 1)),
        (f"{g}.W_depth.weight", (alpha, 1, 7, 7)),
        (f"{g}.W_gate.weight", (h, h + alpha, 1, 1)),
        (f"{g}.W_proj.weight", (h, h, 1, 1)),
        (f"{prefix}.attn.project_out.weight", (c, c, 1, 1)),
        (f"{prefix}.norm2.body.weight", (c,)), (f"{prefix}.norm2.body.bias", (c,)),
        (f"{prefix}.ffn.project_in.weight", (2 * f, c, 1, 1)),
        (f"{prefix}.ffn.dwconv.weight", (2 * f, 1, 3, 3)),
        (f"{prefix}.ffn.project_out.weight", (c, f, 1, 1)),
    ]


def released_keys():
    d1, d2, d3, d4 = DIM, 2 * DIM, 4 * DIM, 8 * DIM
    keys = [("patch_embed.proj.weight", (d1, 3, 3, 3))]
    def stage(name, c, heads, n):
        return [kv for i in range(n) for kv in block(f"{name}.{i}", c, heads)]
    keys += stage("encoder_level1", d1, HEADS[0], BLOCKS[0])
    keys += [("down1_2.body.0.weight", (d1 // 2, d1, 3, 3))]
    keys += stage("encoder_level2", d2, HEADS[1], BLOCKS[1])
    keys += [("down2_3.body.0.weight", (d2 // 2, d2, 3, 3))]
    keys += stage("encoder_level3", d3, HEADS[2], BLOCKS[2])
    keys += [("down3_4.body.0.weight", (d3 // 2, d3, 3, 3))]
    keys += stage("latent", d4, HEADS[3], BLOCKS[3])
    keys += [("up4_3.body.0.weight", (2 * d3, d3, 3, 3)),
             ("reduce_chan_level3.weight", (d3, d2 + d3, 1, 1)),
             ("reduce_dim_level3.weight", (d3, d4, 1, 1))]
    keys += stage("decoder_level3", d3, HEADS[2], BLOCKS[2])
    keys += [("up3_2.body.0.weight", (2 * d3, d3, 3, 3)), ("reduce_chan_level2.weight", (d2, d3, 1, 1))]
    keys += stage("decoder_level2", d2, HEADS[1], BLOCKS[1])
    keys += [("up2_1.body.0.weight", (2 * d2, d2, 3, 3))]
    keys += stage("decoder_level1", d2, HEADS[0], BLOCKS[0])
    keys += stage("refinement", d2, HEADS[0], REFINE)
    keys += [("output.weight", (3, d2, 3, 3))]
    return keys


if __name__ == "__main__":
    out = Path(__file__).with_name("released_anyir_keys.txt")
    out.write_text("".join(f"{k}\t{','.join(map(str, s))}\n" for k, s in sorted(released_keys())))
    print(out, len(released_keys()))
