#!/usr/bin/env python3
"""llama.cpp's token ids for one 32 KiB word, with every tokenizer braid has.

Writes Tests/BraidTests/Fixtures/long_word_tokens.json. The text is 32 KiB of letters without a
space, made here with a fixed seed: mostly a-z, with accented, Cyrillic, CJK and Hangul letters
and one the Gemma vocabulary lacks (byte fallback). Being all letters, it is one word for
SmolLM2's pre-tokenizer and one sequence for Gemma's SentencePiece, so the merge loops run over
all of it at once. The ids come from llama-tokenize (llama.cpp vendored in llama-cpp-python
0.3.36) in its default mode, for SmolLM2 (byte-level BPE) and Gemma 3 (SentencePiece BPE).
TokenizerTests and GemmaTokenizerTests compare braid's ids against them.

Usage: python3 scripts/reference/long_word_tokens.py [--llama-tokenize PATH]
Needs models/SmolLM2-135M-Instruct.Q4_1.gguf (bash scripts/setup.sh) and
models/gemma-3-270m-q4_k_m.gguf (bash scripts/setup.sh --model gemma3-270m).
"""
import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"]
SEED = 64
SIZE = 32 * 1024
COMMON = "abcdefghijklmnopqrstuvwxyzeeeaaiioo"
RARE = ["é", "ü", "ß", "ж", "я", "日", "本", "한", "𐀀"]


def text():
    rng = random.Random(SEED)
    chars, size = [], 0
    while True:
        c = rng.choice(RARE) if rng.random() < 0.05 else rng.choice(COMMON)
        if size + len(c.encode("utf-8")) > SIZE:
            return "".join(chars)
        chars.append(c)
        size += len(c.encode("utf-8"))


def tokenize(tool, model, s):
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        f.write(s.encode("utf-8"))
        path = f.name
    try:
        cmd = [tool, "-m", model, "-f", path, "--ids", "--log-disable", "--no-escape"]
        out = subprocess.run(cmd, check=True, capture_output=True).stdout.decode()
    finally:
        os.unlink(path)
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-tokenize", default="/work/llama/build/bin/llama-tokenize")
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests/BraidTests/Fixtures/long_word_tokens.json"))
    args = ap.parse_args()
    s = text()
    models = {}
    for name in MODELS:
        path = os.path.join(ROOT, "models", name)
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run bash scripts/setup.sh (SmolLM2) or bash scripts/setup.sh --model gemma3-270m")
        with open(path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        models[name] = {"model_sha256": sha, "ids": tokenize(args.llama_tokenize, path, s)}
        print(f"{name}: {len(models[name]['ids'])} ids")
    doc = {
        "tokenizer": "llama-tokenize (llama.cpp vendored in llama-cpp-python 0.3.36), --no-escape, default mode",
        "seed": SEED,
        "bytes": len(s.encode("utf-8")),
        "text": s,
        "models": models,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
        f.write("\n")
    print(f"{len(s)} characters, {doc['bytes']} bytes -> {args.out}")


if __name__ == "__main__":
    main()
