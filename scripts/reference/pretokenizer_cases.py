#!/usr/bin/env python3
"""Token ids from llama.cpp for the llama-bpe (Llama 3) and qwen2 pre-tokenizers, on SmolLM2's
vocabulary: a vocabulary-only copy of models/SmolLM2-135M-Instruct.Q4_1.gguf with
`tokenizer.ggml.pre` changed, tokenised by llama.cpp (no special tokens parsed, no BOS) for every
text of Tests/BraidTests/Fixtures/tokenizer_cases.json. Writes
Tests/BraidIntegrationTests/Fixtures/pretokenizer_cases.json; the Swift test builds the same
vocabulary-only file from the model and compares.

    PYTHONPATH=/work/llama/llama_cpp_python-0.3.36 LLAMA_CPP_LIB_PATH=/work/llama/build/bin \\
        python3 scripts/reference/pretokenizer_cases.py
"""
import json
import os
import tempfile

import gguf
import llama_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def vocabulary_only(pre, path):
    """The model's metadata (no tensors) with tokenizer.ggml.pre = pre."""
    reader = gguf.GGUFReader(MODEL)
    writer = gguf.GGUFWriter(path, arch=reader.fields["general.architecture"].contents())
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value = pre if name == "tokenizer.ggml.pre" else field.contents()
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, value, kind, sub_type=sub)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main():
    with open(os.path.join(ROOT, "Tests", "BraidTests", "Fixtures", "tokenizer_cases.json")) as f:
        texts = sorted({c["text"] for c in json.load(f)})
    cases = []
    with tempfile.TemporaryDirectory() as work:
        for pre in ("llama-bpe", "qwen2"):
            path = os.path.join(work, f"{pre}.gguf")
            vocabulary_only(pre, path)
            model = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
            for text in texts:
                ids = model.tokenize(text.encode("utf-8"), add_bos=False, special=False)
                cases.append({"pre": pre, "text": text, "ids": ids})
    out = os.path.join(ROOT, "Tests", "BraidIntegrationTests", "Fixtures", "pretokenizer_cases.json")
    with open(out, "w") as f:
        json.dump(cases, f, ensure_ascii=False)
    print(f"{len(cases)} cases → {out}")


if __name__ == "__main__":
    main()
