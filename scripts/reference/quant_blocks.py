#!/usr/bin/env python3
"""Reference decodings for braid's block decoders, made by an independent implementation: the
numpy dequantisers of the `gguf` package from PyPI (pip install gguf numpy).

Writes Tests/BraidTests/Fixtures/quant_blocks.json: for every type braid reads through its
unpacking kernel (and BF16), random blocks (fixed seed; the fp16 scale fields set to finite
values) and gguf's floats as bit patterns, so the Swift test compares bit for bit.
With --gemma MODEL it also writes Tests/BraidIntegrationTests/Fixtures/gemma3_tensors.json: for
one real tensor of each type in the Gemma 3 file, the sha256 of gguf's float32 decoding.
"""
import hashlib, json, sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

ROOT = Path(__file__).resolve().parents[2]
# type: (block bytes, byte offsets of fp16 scale fields)
LAYOUTS = {
    T.Q5_0: (22, [0]),
    T.Q5_1: (24, [0, 2]),
    T.Q2_K: (84, [80, 82]),
    T.Q3_K: (110, [108]),
    T.Q4_K: (144, [0, 2]),
    T.Q5_K: (176, [0, 2]),
    T.Q6_K: (210, [208]),
}


def blocks(rng, qtype, count):
    size, halves = LAYOUTS[qtype]
    raw = rng.integers(0, 256, size=(count, size), dtype=np.uint8)
    for off in halves:
        values = (rng.standard_normal(count) * 0.05).astype(np.float16)
        raw[:, off:off + 2] = values.view(np.uint8).reshape(count, 2)
    return raw


def main():
    rng = np.random.default_rng(20261129)
    out = {}
    for qtype in LAYOUTS:
        raw = blocks(rng, qtype, 12)
        floats = gguf.quants.dequantize(raw.reshape(-1), qtype).astype(np.float32).reshape(-1)
        out[qtype.name] = {"bytes": raw.tobytes().hex(), "bits": floats.view(np.uint32).tolist()}
    values = (rng.standard_normal(64) * 3).astype(np.float32)
    bf = (values.view(np.uint32) >> 16).astype(np.uint16)
    floats = gguf.quants.dequantize(bf.view(np.uint8), T.BF16).astype(np.float32)
    out["BF16"] = {"bytes": bf.view(np.uint8).tobytes().hex(), "bits": floats.view(np.uint32).tolist()}
    path = ROOT / "Tests/BraidTests/Fixtures/quant_blocks.json"
    path.write_text(json.dumps(out, indent=0) + "\n")
    print(f"wrote {path}")

    if "--gemma" in sys.argv:
        model = sys.argv[sys.argv.index("--gemma") + 1]
        reader = gguf.GGUFReader(model)
        seen = {}
        # The first of the smallest tensors of each type.
        for t in sorted(reader.tensors, key=lambda t: int(t.n_elements)):
            name = t.tensor_type.name
            if name in seen or name == "F32":
                continue
            floats = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
            seen[name] = {"tensor": t.name, "elements": int(floats.size),
                          "sha256": hashlib.sha256(floats.tobytes()).hexdigest()}
        path = ROOT / "Tests/BraidIntegrationTests/Fixtures/gemma3_tensors.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(seen, indent=1) + "\n")
        print(f"wrote {path}:", ", ".join(k + ' ' + v['tensor'] for k, v in seen.items()))


if __name__ == "__main__":
    main()
