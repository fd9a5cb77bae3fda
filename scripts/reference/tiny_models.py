#!/usr/bin/env python3
"""Tiny random-weight Qwen2 and Llama-3 GGUFs, and llama.cpp's logits on them: the references
braid's forward pass for these architectures is checked against (no real weights of either are
reachable here).

Needs the `gguf` package from PyPI (pip install gguf numpy), llama.cpp's shared library (built from
the llama-cpp-python 0.3.36 sdist, outside this repository) and that sdist's Python bindings, e.g.:
  PYTHONPATH=<sdist>/ LLAMA_CPP_LIB_PATH=<build>/bin python3 scripts/reference/tiny_models.py

For each model the `gguf` package writes an F32 file (fixed seed), which llama.cpp's own quantizer
(llama_model_quantize) turns into a Q4_K_M mix as people download them (Q4_K and Q6_K matrices,
F32 norms, biases and RoPE factors). The vocabulary is SmolLM2's first 3,072 tokens with the
merges among them (pre-tokenizer `smollm`), read from models/SmolLM2-135M-Instruct.Q4_1.gguf.

- qwen2: NeoX RoPE (base 10^6), Q/K/V biases, 8 query heads over 2 KV heads (4:1), tied head.
- llama (Llama 3): rope_freqs.weight (Llama 3's frequency factors, computed as convert_hf_to_gguf
  does, with a 128-token original context so most pairs are scaled within these prompts), 4 query
  heads over 2 KV heads (2:1), an untied output.weight.

The head's rows have log-normal norms (some tokens likelier than others, as in a trained model), so
most positions have a top-1/top-2 margin ≥ 0.5 while the logits' spread stays moderate.

Writes to Tests/BraidIntegrationTests/Fixtures/: tiny-NAME.gguf, and tiny-NAME.json: per prompt
llama.cpp's token ids (the prompt, then 24 greedy tokens) and at every position its top-1 token
and margin over the runner-up (the whole sequence evaluated in one batch); tiny-NAME-last.f32: the
last position's logits of the first prompt from that batch, and tiny-NAME-last-ubatch1.f32: the
same with one token per llama_decode call (little-endian float32).
"""
import ctypes, json, math, sys, tempfile
from pathlib import Path

import numpy as np
import gguf
import llama_cpp
from llama_cpp import Llama

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests/BraidIntegrationTests/Fixtures"
VOCAB = 3072
GREEDY = 24

MODELS = {
    "qwen2": dict(arch="qwen2", d=256, heads=8, kv_heads=2, ff=512, blocks=3, ctx=512,
                  rope_base=1_000_000.0, eps=1e-6, biases=True, tied=True, rope_freqs=False, seed=2),
    "llama3": dict(arch="llama", d=256, heads=4, kv_heads=2, ff=512, blocks=2, ctx=512,
                   rope_base=500_000.0, eps=1e-5, biases=False, tied=False, rope_freqs=True, seed=3),
}

PROMPTS = [
    "The lighthouse keeper climbed the spiral stairs every evening at dusk. He carried a lamp, a "
    "notebook and a flask of tea, and wrote down the ships he could see and the direction of the wind.",
    "def mean(values):\n    total = 0\n    for v in values:\n        total += v\n    return total / len(values)\n",
    "Question: A train leaves at 9:15 and arrives at 11:40. How long is the journey? Answer: 2 hours 25 minutes.",
]


def smollm_tokenizer(path):
    """SmolLM2's first VOCAB tokens, their types, and the merges whose parts and result are among them."""
    r = gguf.GGUFReader(path)
    f = r.fields

    def strings(key):
        return [bytes(f[key].parts[i]).decode("utf-8") for i in f[key].data]

    def scalar(key):
        return f[key].parts[f[key].data[0]][0]

    tokens = strings("tokenizer.ggml.tokens")[:VOCAB]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data][:VOCAB]
    known = set(tokens)
    merges = [m for m in strings("tokenizer.ggml.merges") if all(p in known for p in m.split(" ")) and m.replace(" ", "") in known]
    ids = {k: int(scalar(f"tokenizer.ggml.{k}_token_id")) for k in ["bos", "eos", "unknown", "padding"]}
    assert max(ids.values()) < VOCAB
    return tokens, types, merges, ids


def llama3_rope_factors(base, dim, factor=8.0, low=1.0, high=4.0, original_context=128):
    """Llama 3's per-pair frequency divisors (convert_hf_to_gguf's rope_type llama3)."""
    out = []
    for i in range(0, dim, 2):
        wavelen = 2 * math.pi * base ** (i / dim)
        if wavelen < original_context / high:
            out.append(1.0)
        elif wavelen > original_context / low:
            out.append(factor)
        else:
            smooth = (original_context / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def write_f32(path, m, tokenizer):
    tokens, types, merges, ids = tokenizer
    rng = np.random.default_rng(m["seed"])
    d, ff, hd = m["d"], m["ff"], m["d"] // m["heads"]
    qd, kvd = m["heads"] * hd, m["kv_heads"] * hd
    w = gguf.GGUFWriter(str(path), m["arch"])
    w.add_name(f"tiny-{m['arch']}")
    w.add_block_count(m["blocks"])
    w.add_context_length(m["ctx"])
    w.add_embedding_length(d)
    w.add_feed_forward_length(ff)
    w.add_head_count(m["heads"])
    w.add_head_count_kv(m["kv_heads"])
    w.add_rope_freq_base(m["rope_base"])
    w.add_layer_norm_rms_eps(m["eps"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    if m["arch"] == "llama":
        w.add_vocab_size(VOCAB)
        w.add_rope_dimension_count(hd)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(ids["bos"])
    w.add_eos_token_id(ids["eos"])
    w.add_unk_token_id(ids["unknown"])
    w.add_pad_token_id(ids["padding"])
    w.add_add_bos_token(False)

    def normal(shape, std):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def norm(n):
        return (1 + normal(n, 0.1)).astype(np.float32)

    def head():
        # Rows of std 0.25·e^(0.5·z), z ~ N(0, 1) per token (some tokens likelier than others,
        # as in a trained head): logits spread with clear winners, most margins ≥ 0.5.
        return (normal((VOCAB, d), 0.25) * np.exp(0.5 * rng.standard_normal((VOCAB, 1)))).astype(np.float32)

    # Matrices are stored [rows, columns] in numpy order (ggml's shape reversed).
    w.add_tensor("token_embd.weight", head())
    w.add_tensor("output_norm.weight", norm(d))
    if not m["tied"]:
        w.add_tensor("output.weight", head())
    if m["rope_freqs"]:
        w.add_tensor("rope_freqs.weight", llama3_rope_factors(m["rope_base"], hd))
    for l in range(m["blocks"]):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", norm(d))
        # q and k a little larger than 1/√d so attention is not uniform.
        w.add_tensor(p + "attn_q.weight", normal((qd, d), 2 / math.sqrt(d)))
        w.add_tensor(p + "attn_k.weight", normal((kvd, d), 2 / math.sqrt(d)))
        w.add_tensor(p + "attn_v.weight", normal((kvd, d), 1 / math.sqrt(d)))
        if m["biases"]:
            w.add_tensor(p + "attn_q.bias", normal(qd, 0.5))
            w.add_tensor(p + "attn_k.bias", normal(kvd, 0.5))
            w.add_tensor(p + "attn_v.bias", normal(kvd, 0.5))
        w.add_tensor(p + "attn_output.weight", normal((d, qd), 1 / math.sqrt(qd)))
        w.add_tensor(p + "ffn_norm.weight", norm(d))
        w.add_tensor(p + "ffn_gate.weight", normal((ff, d), 1 / math.sqrt(d)))
        w.add_tensor(p + "ffn_up.weight", normal((ff, d), 1 / math.sqrt(d)))
        w.add_tensor(p + "ffn_down.weight", normal((d, ff), 1 / math.sqrt(ff)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def quantize(src, dst):
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    assert rc == 0, f"llama_model_quantize returned {rc}"


def top2(logits):
    order = np.argsort(-logits, axis=1)
    rows = np.arange(len(logits))
    return order[:, 0], logits[rows, order[:, 0]] - logits[rows, order[:, 1]]


def references(name, model):
    llm = Llama(str(model), n_ctx=512, n_threads=2, logits_all=True, verbose=False)
    cases = []
    for text in PROMPTS:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        # Greedy continuation, one token per call.
        llm.reset()
        llm.eval(ids)
        for _ in range(GREEDY):
            ids.append(int(np.argmax(llm.scores[len(ids) - 1])))
            llm.eval(ids[-1:])
        # The whole sequence in one batch: top-1 and margin at every position.
        llm.reset()
        llm.eval(ids)
        logits = np.array(llm.scores[:len(ids)], dtype=np.float32)
        top, margin = top2(logits)
        cases.append({"text": text, "prompt_tokens": len(ids) - GREEDY, "ids": ids, "top1": top.tolist(),
                      "margin": [round(float(x), 4) for x in margin]})
        if len(cases) == 1:
            (OUT / f"tiny-{name}-last.f32").write_bytes(logits[-1].astype("<f4").tobytes())
        print(f"{name}: {len(ids)} tokens, logits std {logits.std():.2f}, "
              f"{int((margin >= 0.5).sum())} positions with margin ≥ 0.5")
    (OUT / f"tiny-{name}.json").write_text(json.dumps(cases) + "\n")
    single = Llama(str(model), n_ctx=512, n_batch=1, n_ubatch=1, n_threads=2, logits_all=True, verbose=False)
    single.eval(cases[0]["ids"])
    last = np.array(single.scores[len(cases[0]["ids"]) - 1], dtype=np.float32)
    (OUT / f"tiny-{name}-last-ubatch1.f32").write_bytes(last.astype("<f4").tobytes())


def main():
    smollm = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf")
    tokenizer = smollm_tokenizer(smollm)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, m in MODELS.items():
            src = Path(tmp) / f"{name}-f32.gguf"
            dst = OUT / f"tiny-{name}.gguf"
            write_f32(src, m, tokenizer)
            quantize(src, dst)
            print(f"wrote {dst} ({dst.stat().st_size} bytes)")
            references(name, dst)


if __name__ == "__main__":
    main()
