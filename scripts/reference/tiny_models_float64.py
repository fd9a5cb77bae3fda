#!/usr/bin/env python3
"""A float64 forward pass of the tiny Qwen2 and Llama 3 GGUFs (weights dequantised by the `gguf`
package), as a check on the references tiny_models.py stored: how far llama.cpp's last-position
logits are from exact arithmetic, and how far they would be if a feature were left out.

  python3 scripts/reference/tiny_models_float64.py                      # both models, as built
  python3 scripts/reference/tiny_models_float64.py --without neox       # qwen2 with adjacent-pair RoPE
  python3 scripts/reference/tiny_models_float64.py --without biases     # qwen2 without Q/K/V biases
  python3 scripts/reference/tiny_models_float64.py --without factors    # llama3 without rope_freqs

Prints the rms of llama.cpp's stored logits (batched and one token per call) against this pass.
"""
import json, sys
from pathlib import Path

import numpy as np
import gguf

FIXTURES = Path(__file__).resolve().parents[2] / "Tests/BraidIntegrationTests/Fixtures"


def forward(name, without):
    r = gguf.GGUFReader(FIXTURES / f"tiny-{name}.gguf")
    w = {t.name: gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64).reshape([int(x) for x in reversed(t.shape)])
         for t in r.tensors}
    f = r.fields

    def value(key):
        return f[key].parts[f[key].data[0]][0]

    arch = bytes(f["general.architecture"].parts[-1]).decode()
    blocks, heads = int(value(f"{arch}.block_count")), int(value(f"{arch}.attention.head_count"))
    kv_heads, d = int(value(f"{arch}.attention.head_count_kv")), int(value(f"{arch}.embedding_length"))
    base, eps = float(value(f"{arch}.rope.freq_base")), float(value(f"{arch}.attention.layer_norm_rms_epsilon"))
    hd = d // heads
    neox = arch == "qwen2" and without != "neox"
    ids = json.loads((FIXTURES / f"tiny-{name}.json").read_text())[0]["ids"]
    n = len(ids)

    inv = base ** (-np.arange(0, hd, 2) / hd)
    if "rope_freqs.weight" in w and without != "factors":
        inv = inv / w["rope_freqs.weight"]
    cos, sin = np.cos(np.arange(n)[:, None] * inv)[:, None, :], np.sin(np.arange(n)[:, None] * inv)[:, None, :]

    def rope(x):
        a, b = (x[..., :hd // 2], x[..., hd // 2:]) if neox else (x[..., 0::2], x[..., 1::2])
        ra, rb = a * cos - b * sin, a * sin + b * cos
        if neox:
            return np.concatenate([ra, rb], -1)
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = ra, rb
        return out

    def norm(x, weight):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * weight

    def bias(p):
        return 0 if without == "biases" else w.get(p, 0)

    mask = np.triu(np.full((n, n), -np.inf), 1)
    x = w["token_embd.weight"][ids]
    for l in range(blocks):
        p = f"blk.{l}."
        h = norm(x, w[p + "attn_norm.weight"])
        q = rope((h @ w[p + "attn_q.weight"].T + bias(p + "attn_q.bias")).reshape(n, heads, hd))
        k = rope((h @ w[p + "attn_k.weight"].T + bias(p + "attn_k.bias")).reshape(n, kv_heads, hd))
        v = (h @ w[p + "attn_v.weight"].T + bias(p + "attn_v.bias")).reshape(n, kv_heads, hd)
        att = np.zeros((n, heads, hd))
        for j in range(heads):
            kv = j // (heads // kv_heads)
            s = q[:, j] @ k[:, kv].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(1, keepdims=True))
            att[:, j] = (s / s.sum(1, keepdims=True)) @ v[:, kv]
        x = x + att.reshape(n, d) @ w[p + "attn_output.weight"].T
        h = norm(x, w[p + "ffn_norm.weight"])
        gate, up = h @ w[p + "ffn_gate.weight"].T, h @ w[p + "ffn_up.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ w[p + "ffn_down.weight"].T
    head = w.get("output.weight", w["token_embd.weight"])
    return norm(x[-1], w["output_norm.weight"]) @ head.T


def main():
    without = sys.argv[sys.argv.index("--without") + 1] if "--without" in sys.argv else None
    names = {"neox": ["qwen2"], "biases": ["qwen2"], "factors": ["llama3"]}.get(without, ["qwen2", "llama3"])
    for name in names:
        exact = forward(name, without)
        for file in [f"tiny-{name}-last.f32", f"tiny-{name}-last-ubatch1.f32"]:
            ref = np.fromfile(FIXTURES / file, dtype="<f4")
            print(f"{name}{' without ' + without if without else ''}: {file} vs float64 rms {np.sqrt(((ref - exact) ** 2).mean()):.4f}")


if __name__ == "__main__":
    main()
