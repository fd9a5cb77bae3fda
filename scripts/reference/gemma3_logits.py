#!/usr/bin/env python3
"""llama.cpp's logits for Gemma 3 270M, the reference braid's forward pass is checked against.

Needs llama.cpp's shared library (built from the llama-cpp-python 0.3.36 sdist, outside this
repository) and that sdist's Python bindings, e.g.:
  PYTHONPATH=<sdist>/ LLAMA_CPP_LIB_PATH=<build>/bin python3 scripts/reference/gemma3_logits.py models/gemma-3-270m-q4_k_m.gguf

Writes Tests/BraidIntegrationTests/Fixtures/gemma3_logits.json: for five prompts (one longer
than the 512-token sliding window) llama.cpp's token ids (BOS first) and, at every position,
its top-1 token and margin over the runner-up; and gemma3_last_logits.f16: the whole last-
position logits of the first prompt as little-endian fp16, from the prompt evaluated in one
batch, gemma3_last_logits_ubatch1.f16: the same with one token per llama_decode call, and
gemma3_last_logits_ubatch7.f16: seven tokens per call. llama.cpp's three ways differ from each
other by an rms of 0.16 to 0.29 on this prompt (its matrix products round otherwise with another
batch size, and Gemma 3's logits amplify such roundings): the spread the test holds braid to.
"""
import json, sys
from pathlib import Path

import numpy as np
from llama_cpp import Llama

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests/BraidIntegrationTests/Fixtures"

PROMPTS = [
    "The lighthouse keeper climbed the spiral stairs every evening at dusk. He carried a lamp, a "
    "notebook and a flask of tea, and at the top he wrote down the ships he could see, the colour of "
    "the sky and the direction of the wind. After thirty years the notebooks filled a whole shelf, and his daughter read them aloud to visitors on winter nights.",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n    for _ in "
    "range(n):\n        a, b = b, a + b\n    return a\n\n\nif __name__ == \"__main__\":\n    for i in "
    "range(10):\n        print(i, fibonacci(i))\n",
    "Question: A train leaves the station at 9:15 and arrives at 11:40. The distance is 174 km. What "
    "was its average speed in kilometres per hour? Answer: The journey takes 2 hours and 25 minutes, "
    "which is 145 minutes, so the speed is 174 / (145 / 60) = 72 km/h.",
    "Les marchés de Provence ouvrent tôt le matin. On y trouve des tomates, des olives, du fromage de "
    "chèvre et des herbes séchées. Die Händler rufen ihre Preise, und die Besucher probieren Honig "
    "und Lavendel. 市场在中午关闭，商人们收拾摊位。",
]
# Longer than the 512-token window of the local layers.
LONG = "\n\n".join(PROMPTS) + "\n\nInventory:\n" + "\n".join(
    f"- item {i}: {['apples', 'nails', 'rope', 'candles', 'maps', 'salt'][i % 6]}, {i * 7 % 31 + 1} units, shelf {chr(65 + i % 9)}"
    for i in range(1, 41))


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "models/gemma-3-270m-q4_k_m.gguf")
    llm = Llama(model, n_ctx=2048, n_threads=2, logits_all=True, verbose=False)
    cases = []
    for i, text in enumerate(PROMPTS + [LONG]):
        ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        llm.reset()
        llm.eval(ids)
        logits = np.array(llm.scores[:len(ids)], dtype=np.float32)
        order = np.argsort(-logits, axis=1)
        top = order[:, 0]
        margin = logits[np.arange(len(ids)), top] - logits[np.arange(len(ids)), order[:, 1]]
        cases.append({"text": text, "ids": ids, "top1": top.tolist(), "margin": [round(float(m), 4) for m in margin]})
        if i == 0:
            (OUT / "gemma3_last_logits.f16").write_bytes(logits[-1].astype("<f2").tobytes())
        print(f"prompt {i}: {len(ids)} tokens")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "gemma3_logits.json").write_text(json.dumps(cases) + "\n")
    for ubatch in (1, 7):
        split = Llama(model, n_ctx=256, n_batch=ubatch, n_ubatch=ubatch, n_threads=2, logits_all=True, verbose=False)
        split.eval(cases[0]["ids"])
        last = np.array(split.scores[len(cases[0]["ids"]) - 1], dtype=np.float32)
        (OUT / f"gemma3_last_logits_ubatch{ubatch}.f16").write_bytes(last.astype("<f2").tobytes())


if __name__ == "__main__":
    main()
