import Foundation

/// The rules the core implements, word for word as the test vectors' index names them
/// (mobile/vectors.py RULES, format anyir-mobile/testvectors/2). A changed rule in Python fails
/// tests/test_ios_sources.py and the XCTests until this file and the code it describes are re-checked.
public enum Rules {
    public static let vectorsFormat = "anyir-mobile/testvectors/2"
    public static let text: [String: String] = [
        "tile_order": "row-major: for y in ys, for x in xs",
        "padding": "reflect at bottom/right up to the tile size (mirror without repeating the edge pixel; again while still short; an axis of 1 px repeats)",
        "plan": "per axis n = 1 + ceil((L - T) / (T - overlap)) tiles, origin_i = floor(i * (L - T) / (n - 1))",
        "blend": "w(y)*w(x) in float32, w(t) = sin^2(pi/2*(t+0.5)/overlap) (computed in float64, stored float32) over the first and last `overlap` pixels, the smaller where both apply, 1 inside; acc += out*w and wsum += w in float32, tile by tile in plan order; out = acc / wsum",
        "to_float": "v / 255 in float32 per 8-bit channel (R, G, B of ARGB); alpha unused",
        "to_8bit": "floor(clip(v, 0, 1) * 255 + 0.5) in float32",
        "exactness": "bit-identical: an app's 8-bit output equals the reference's in every value (same float32 operations in the same order), not merely within one level",
        "standin": "tile i in plan order: out = x if i is even, else 0.5 * (1 - x), in float32 (a model whose neighbouring tiles disagree, so the blend decides every overlapped pixel)",
        "quantize": "q = clip(round_half_even(v / scale) + zero_point, -128, 127); v = (q - zero_point) * scale",
        "exif": "orientation 1-8 as PIL.ImageOps.exif_transpose; others are ignored",
    ]
}
