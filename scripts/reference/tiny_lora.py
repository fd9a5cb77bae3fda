#!/usr/bin/env python3
"""Makes the LoRA fixtures of Tests/BraidTests/Fixtures/lora (issue 15, item 4).

A tiny random Llama built by `transformers` from a config (nothing downloaded), with a
SentencePiece tokenizer trained here on prompts/perplexity.txt; llama.cpp's own
convert_hf_to_gguf.py turns it into the GGUF base (F32). Two adapters made by the real `peft`
library with random A and B: `lora` (r 4, alpha 8, all seven projections) and `rslora`
(r 8, alpha 4, use_rslora, q/v/down only). The reference is transformers+peft's logits at every
position of fixed token ids, for the base and each adapter.

Needs torch, transformers, peft, sentencepiece, safetensors and the llama.cpp source tree:
    python3 -m venv /tmp/lora && /tmp/lora/bin/pip install torch transformers peft sentencepiece safetensors numpy
    LLAMA_CPP=/path/to/llama.cpp /tmp/lora/bin/python scripts/reference/tiny_lora.py
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import sentencepiece as spm
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "BraidTests", "Fixtures", "lora")
LLAMA_CPP = os.environ.get("LLAMA_CPP", "/work/llama/llama_cpp_python-0.3.36/vendor/llama.cpp")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PROMPTS = ["The quick brown fox jumps over the lazy dog.", "Add 250 and 317, then tell me the sum."]


def main():
    torch.manual_seed(7)
    work = tempfile.mkdtemp(prefix="braid-lora-")
    model_dir = os.path.join(work, "tiny-llama")
    os.makedirs(model_dir)

    # A SentencePiece BPE vocabulary with byte fallback, as Llama 2's.
    spm.SentencePieceTrainer.train(input=os.path.join(ROOT, "prompts", "perplexity.txt"),
                                   model_prefix=os.path.join(work, "sp"), vocab_size=384, model_type="bpe",
                                   byte_fallback=True, character_coverage=1.0, bos_id=1, eos_id=2, unk_id=0,
                                   pad_id=-1, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(work, "sp.model"))
    shutil.copy(os.path.join(work, "sp.model"), os.path.join(model_dir, "tokenizer.model"))  # what the converter reads

    config = LlamaConfig(vocab_size=sp.get_piece_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
                         rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config).float().eval()
    # Weights wider than the default init (std 0.02), so the logits are not near-uniform and the top-1 checks have margins.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0, 0.5 / p.shape[1] ** 0.5 * (4 if "embed" in name or "lm_head" in name else 2))
            else:
                p.uniform_(0.8, 1.2)
    model.save_pretrained(model_dir, safe_serialization=True)

    gguf_path = os.path.join(OUT, "tiny-llama.f32.gguf")
    os.makedirs(OUT, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.path.join(LLAMA_CPP, "gguf-py"))
    subprocess.run([sys.executable, os.path.join(LLAMA_CPP, "convert_hf_to_gguf.py"), model_dir, "--outtype", "f32",
                    "--outfile", gguf_path], check=True, env=env, stdout=subprocess.DEVNULL)

    ids = [[1] + sp.encode(p) for p in PROMPTS]  # BOS first, as llama.cpp adds it
    reference = {"prompts": PROMPTS, "token_ids": ids, "logits": {}}

    def logits(m):
        with torch.no_grad():
            return [m(torch.tensor([t])).logits[0].tolist() for t in ids]

    reference["logits"]["base"] = logits(model)
    adapters = {
        "lora": LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0, init_lora_weights=False),
        "rslora": LoraConfig(r=8, lora_alpha=4, target_modules=["q_proj", "v_proj", "down_proj"], lora_dropout=0.0,
                             use_rslora=True, init_lora_weights=False),
    }
    for name, lora in adapters.items():
        torch.manual_seed(11 if name == "lora" else 12)
        peft_model = get_peft_model(LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval(), lora)
        with torch.no_grad():  # B·A about a tenth of the weights: a real change, far from a new model
            for n, p in peft_model.named_parameters():
                if "lora_" in n:
                    p.mul_(0.6)
        peft_model.eval()
        adapter_dir = os.path.join(OUT, name)
        shutil.rmtree(adapter_dir, ignore_errors=True)
        peft_model.save_pretrained(adapter_dir)
        reference["logits"][name] = logits(peft_model)

    def rounded(x):
        return [[[round(v, 5) for v in row] for row in seq] for seq in x]

    reference["logits"] = {k: rounded(v) for k, v in reference["logits"].items()}
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(reference, f)
    for name in ("lora", "rslora"):
        for junk in ("README.md",):
            path = os.path.join(OUT, name, junk)
            if os.path.exists(path):
                os.remove(path)
    shutil.rmtree(work)
    base = np.array(reference["logits"]["base"][0])
    for name in adapters:
        tuned = np.array(reference["logits"][name][0])
        print(f"{name}: rms change of the logits {np.sqrt(((tuned - base) ** 2).mean()):.3f} (logit rms {np.sqrt((base ** 2).mean()):.3f})")


if __name__ == "__main__":
    main()
