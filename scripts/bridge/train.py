#!/usr/bin/env python3
"""Trains an LLM-Modules bridge (METHODS.md §7, braid's variant: Sources/Braid/Bridge/Bridge.swift)
from a frozen source model into the small base, and the no-bridge control (c) on the same data.

Inputs come from braid itself, so training sees what serving sees:
  braid source-states --source SOURCE.gguf -i prompts.jsonl -o states.gguf
gives, per prompt, the source's final-norm states over the prompt (its own tokenizer, no chat
template) and the small model's ChatML tokens of it. The small model here is the base GGUF
dequantised into transformers' Llama (the same weights braid runs, in float32).

Causal by construction: the source reads only the question, the loss is only on the answer
tokens, and the bridge writes only positions from the user's turn on, so no position can read
the source's view of a token it must predict (the label leak of METHODS.md §7 cannot happen).

  train.py bridge  --states S --train T.jsonl --dev D.jsonl --out B.bridge.gguf   # (d)
  train.py control --states S --train T.jsonl --dev D.jsonl --answers OUT.jsonl --eval E.jsonl  # (c)
  train.py fixture --out-dir Tests/Fixtures/bridge                                 # parity test data
"""
import argparse
import hashlib
import json
import math
import os
import random
import sys
import time

import gguf
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BASE = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
IM_END = 2


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_small(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    d, f = os.path.split(os.path.abspath(path))
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tok


def read_states(path):
    """{id: (source states [S, ds] tensor, chat tokens list, query start)} and the two sha256."""
    r = gguf.GGUFReader(path)
    field = lambda k: r.fields[k].contents()
    ids, counts = field("braid.states.ids"), field("braid.states.counts")
    chat, chat_counts, starts = field("braid.states.chat_tokens"), field("braid.states.chat_counts"), field("braid.states.query_starts")
    states = np.array(r.tensors[0].data, dtype=np.float32)
    out, s, c = {}, 0, 0
    for i, n, m, q in zip(ids, counts, chat_counts, starts):
        out[i] = (torch.from_numpy(states[s:s + n].copy()), list(chat[c:c + m]), q)
        s += n
        c += m
    template = field("braid.states.source_template") if "braid.states.source_template" in r.fields else "{}"
    return out, field("braid.states.small_sha256"), field("braid.states.source_sha256"), template


def vocabulary_alignment(source_path, model, tok):
    """Least-squares map from the source's token embeddings to the small model's (both tied to
    their heads) over the tokens both vocabularies spell alike: a final-norm state of the source
    that points at a word then points at the same word in the small model's space."""
    r = gguf.GGUFReader(source_path)
    pieces = r.fields["tokenizer.ggml.tokens"].contents()
    t = next(t for t in r.tensors if t.name == "token_embd.weight")
    source = gguf.quants.dequantize(t.data, t.tensor_type).reshape(len(pieces), -1)
    def plain(text, space):
        text = text.replace(space, " ")
        return text if text.strip() and all(32 <= ord(c) < 127 for c in text) else None
    mine = {}
    for piece, i in tok.get_vocab().items():
        k = plain(piece, "Ġ")
        if k is not None:
            mine[k] = i
    pairs = [(g, mine[k]) for g, piece in enumerate(pieces) if (k := plain(piece, "▁")) is not None and k in mine]
    x = torch.from_numpy(np.ascontiguousarray(source[[g for g, _ in pairs]], dtype=np.float32))
    y = model.model.embed_tokens.weight[[m for _, m in pairs]].detach()
    w = torch.linalg.lstsq(x, y).solution
    fit = 1 - ((x @ w - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum()).item()
    print(f"vocabulary alignment: {len(pairs)} shared tokens, R² {fit:.3f}", flush=True)
    return w  # source width × small width


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


class ECA(nn.Module):
    """One Enhanced Cross-Attention layer, as Bridge.add computes it."""

    def __init__(self, d, a, heads, r, eps):
        super().__init__()
        self.heads, self.eps = heads, eps
        self.q_norm = nn.Parameter(torch.ones(d))
        self.m_norm = nn.Parameter(torch.ones(d))
        self.q = nn.Linear(d, a, bias=False)
        self.k = nn.Linear(d, a, bias=False)
        self.v = nn.Linear(d, a, bias=False)
        self.o = nn.Linear(a, d, bias=False)
        self.down = nn.Linear(d, r)
        self.up = nn.Linear(r, d)
        self.gate = nn.Linear(2 * d, d)
        # Zero output: an untrained bridge leaves the small model exactly as it was.
        nn.init.zeros_(self.o.weight)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        nn.init.zeros_(self.gate.bias)

    def forward(self, x, mem, mem_pad, write):
        """x [B,T,d] residual; mem [B,S,d] projected source; mem_pad [B,S] True where padding;
        write [B,T] 1 where the bridge writes."""
        B, T, _ = x.shape
        S = mem.shape[1]
        h = rms(x, self.q_norm, self.eps)
        m = rms(mem, self.m_norm, self.eps)
        hd = self.q.out_features // self.heads
        q = self.q(h).view(B, T, self.heads, hd).transpose(1, 2)
        k = self.k(m).view(B, S, self.heads, hd).transpose(1, 2)
        v = self.v(m).view(B, S, self.heads, hd).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
        scores = scores.masked_fill(mem_pad[:, None, None, :], float("-inf"))
        att = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, -1)
        o = self.o(att)
        A = o + self.up(F.gelu(self.down(o), approximate="tanh"))
        g = torch.sigmoid(self.gate(torch.cat([h, A], -1)))
        return x + write[..., None] * g * A


class BridgeNet(nn.Module):
    def __init__(self, d, ds, blocks, heads, a, r, eps=1e-5):
        super().__init__()
        self.blocks, self.eps = list(blocks), eps
        self.dims = dict(d=d, ds=ds, heads=heads, a=a, r=r)
        self.proj = nn.Linear(ds, d)
        self.layers = nn.ModuleList([ECA(d, a, heads, r, eps) for _ in blocks])

    def round_to_f16(self):
        """The weights as the GGUF stores them, so that braid and this run the same numbers."""
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(p.half().float())

    def write(self, path, small_sha, source_sha, source_file, name, template="{}"):
        w = gguf.GGUFWriter(path, arch="braid_bridge")
        # GGUFWriter always writes general.architecture; braid reads general.type.
        w.add_string("general.type", "braid_bridge")
        w.add_string("general.name", name)
        w.add_uint32("braid.bridge.version", 1)
        w.add_string("braid.bridge.small_sha256", small_sha)
        w.add_string("braid.bridge.source_sha256", source_sha)
        w.add_string("braid.bridge.source_file", source_file)
        w.add_string("braid.bridge.source_template", template)
        D = self.dims
        w.add_uint32("braid.bridge.width", D["d"])
        w.add_uint32("braid.bridge.source_width", D["ds"])
        w.add_uint32("braid.bridge.attention_width", D["a"])
        w.add_uint32("braid.bridge.heads", D["heads"])
        w.add_uint32("braid.bridge.adapter_width", D["r"])
        w.add_float32("braid.bridge.eps", self.eps)
        w.add_array("braid.bridge.blocks", [int(b) for b in self.blocks])
        f16 = lambda t: t.detach().cpu().numpy().astype(np.float16)
        w.add_tensor("proj.weight", f16(self.proj.weight))
        w.add_tensor("proj.bias", f16(self.proj.bias))
        for i, L in enumerate(self.layers):
            p = f"blk.{i}."
            for name, t in [("q_norm", L.q_norm), ("m_norm", L.m_norm), ("q", L.q.weight), ("k", L.k.weight),
                            ("v", L.v.weight), ("o", L.o.weight), ("down", L.down.weight), ("down_bias", L.down.bias),
                            ("up", L.up.weight), ("up_bias", L.up.bias), ("gate", L.gate.weight), ("gate_bias", L.gate.bias)]:
                w.add_tensor(p + name, f16(t))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()


class Upper:
    """The small model from block `first` on, run on cached inputs of that block."""

    def __init__(self, model, first):
        self.model, self.first = model, first

    def lower(self, ids):
        """Input of block `first` for a batch of right-padded ids (no grad: the blocks below are frozen)."""
        m = self.model.model
        layers = m.layers
        m.layers = layers[: self.first + 1]  # hidden_states[first] is the input of block `first`
        try:
            with torch.no_grad():
                out = m(input_ids=ids, output_hidden_states=True)
        finally:
            m.layers = layers
        return out.hidden_states[self.first]

    def forward(self, h, bridge=None, mem=None, mem_pad=None, write=None):
        m = self.model.model
        B, T, _ = h.shape
        pos = torch.arange(T)[None].expand(B, T)
        pe = m.rotary_emb(h, pos)
        for l in range(self.first, len(m.layers)):
            if bridge is not None and l in bridge.blocks:
                h = bridge.layers[bridge.blocks.index(l)](h, mem, mem_pad, write)
            out = m.layers[l](h, attention_mask=None, position_ids=pos, position_embeddings=pe)
            h = out[0] if isinstance(out, tuple) else out
        return m.norm(h)


def examples(path, states, tok):
    """Training pairs: (id, chat tokens + answer tokens + <|im_end|>, first answer index, query start, source states)."""
    out = []
    for line in open(path, encoding="utf-8"):
        q = json.loads(line)
        if q["id"] not in states:  # a states file may cover part of a split
            continue
        src, chat, start = states[q["id"]]
        answer = tok.encode(q["answer"], add_special_tokens=False) + [IM_END]
        out.append((q["id"], chat + answer, len(chat), start, src))
    return out


def batch_tensors(batch, upper, bridge):
    """Padded ids, the targets' (row, position, token), source memory, its padding and the write mask."""
    B, T = len(batch), max(len(e[1]) for e in batch)
    ids = torch.full((B, T), IM_END, dtype=torch.long)
    write = torch.zeros(B, T)
    rows, cols, targets = [], [], []
    for b, (_, toks, first, start, _) in enumerate(batch):
        ids[b, :len(toks)] = torch.tensor(toks)
        write[b, start:] = 1
        for t in range(first - 1, len(toks) - 1):
            rows.append(b), cols.append(t), targets.append(toks[t + 1])
    S = max(e[4].shape[0] for e in batch)
    src = torch.zeros(B, S, batch[0][4].shape[1])
    pad = torch.ones(B, S, dtype=torch.bool)
    for b, e in enumerate(batch):
        src[b, :e[4].shape[0]] = e[4]
        pad[b, :e[4].shape[0]] = False
    return ids, (torch.tensor(rows), torch.tensor(cols), torch.tensor(targets)), src, pad, write


def loss_of(upper, model, bridge, h, tgt, src, pad, write):
    mem = bridge.proj(src) if bridge is not None else None
    out = upper.forward(h, bridge, mem, pad, write)
    rows, cols, targets = tgt
    logits = model.lm_head(out[rows, cols])
    return F.cross_entropy(logits, targets)


def train(args, mode):
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(args.threads)
    model, tok = load_small(args.base)
    states, small_sha, source_sha, template = read_states(args.states)
    if small_sha != sha256(args.base):
        sys.exit(f"{args.states} was made for another small model than {args.base}")
    blocks = [int(b) for b in args.blocks.split(",")]
    first = min(blocks)
    upper = Upper(model, first)
    train_set = examples(args.train, states, tok)
    dev_set = examples(args.dev, states, tok)[: args.dev_limit]
    bridge = None
    if mode == "bridge":
        bridge = BridgeNet(model.config.hidden_size, train_set[0][4].shape[1], blocks, args.heads, args.attention, args.adapter)
        if args.align:
            # Start from a map that carries the source's words to the same words, and let the
            # values pass the projected states unchanged (the output still starts at zero).
            with torch.no_grad():
                bridge.proj.weight.copy_(vocabulary_alignment(args.source_file, model, tok).T)
                bridge.proj.bias.zero_()
                for L in bridge.layers:
                    if args.attention == model.config.hidden_size:
                        L.v.weight.copy_(torch.eye(args.attention))
        params = list(bridge.parameters())
        lr = args.lr
    else:  # control (c): the same blocks of the small model trained, no bridge
        params = [p for l in model.model.layers[first:] for p in l.parameters()]
        for p in params:
            p.requires_grad_(True)
        lr = args.control_lr
    print(f"{mode}: {sum(p.numel() for p in params) / 1e6:.2f} M trainable parameters, {len(train_set)} train, {len(dev_set)} dev", flush=True)
    # Inputs of the first trained block, computed once (the blocks below never change).
    cache = {}
    t0 = time.time()
    for pool in (train_set, dev_set):
        for i in range(0, len(pool), 32):
            chunk = pool[i:i + 32]
            ids = batch_tensors(chunk, upper, bridge)[0]
            h = upper.lower(ids)
            for b, e in enumerate(chunk):
                cache[e[0]] = h[b, :len(e[1])].clone()
            if i % 640 == 0:
                print(f"  cached {len(cache)} ({time.time() - t0:.0f} s)", flush=True)
    print(f"cached block-{first} inputs in {time.time() - t0:.0f} s", flush=True)

    def run_batch(batch):
        ids, tgt, src, pad, write = batch_tensors(batch, upper, bridge)
        h = torch.zeros(len(batch), ids.shape[1], model.config.hidden_size)
        for b, e in enumerate(batch):
            h[b, :len(e[1])] = cache[e[0]]
        return loss_of(upper, model, bridge, h, tgt, src, pad, write)

    def dev_loss():
        with torch.no_grad():
            losses = [run_batch(dev_set[i:i + 32]).item() for i in range(0, len(dev_set), 32)]
        return sum(losses) / len(losses)

    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps = args.steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / 20) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    print(f"step 0 dev loss {dev_loss():.4f}", flush=True)
    order = []
    t0 = time.time()
    for step in range(1, steps + 1):
        if len(order) < args.batch:
            order += random.sample(range(len(train_set)), len(train_set))
        batch = [train_set[i] for i in order[: args.batch]]
        del order[: args.batch]
        loss = run_batch(batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % args.log_every == 0 or step == steps:
            print(f"step {step} loss {loss.item():.4f} dev loss {dev_loss():.4f} ({time.time() - t0:.0f} s)", flush=True)
    if bridge is not None:
        bridge.round_to_f16()
        bridge.write(args.out, small_sha, source_sha, os.path.basename(args.source_file), args.name, template)
        print(f"wrote {args.out} (dev loss after f16 rounding {dev_loss():.4f})")
    else:
        for p in params:
            p.requires_grad_(False)
        answer(model, tok, args.eval, args.answers, args.max_tokens)


def answer(model, tok, path, out, max_tokens):
    """Greedy answers in ChatML with the default system prompt (as braid run formats them)."""
    qs = [json.loads(l) for l in open(path, encoding="utf-8")]
    tok.padding_side = "left"
    with open(out, "w", encoding="utf-8") as f:
        for i in range(0, len(qs), 32):
            chunk = qs[i:i + 32]
            texts = [tok.apply_chat_template([{"role": "user", "content": q["prompt"]}], add_generation_prompt=True, tokenize=False) for q in chunk]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                gen = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False, eos_token_id=IM_END, pad_token_id=IM_END)
            for q, g in zip(chunk, gen[:, enc["input_ids"].shape[1]:]):
                text = tok.decode([t for t in g.tolist() if t != IM_END], skip_special_tokens=True)
                f.write(json.dumps({"id": q["id"], "output": text}) + "\n")
    print(f"answers -> {out}")


def fixture(args):
    """A random bridge with a non-zero output, random source states and a prompt: the logits of
    its last position with and without the bridge, for the Swift parity test."""
    torch.manual_seed(7)
    model, tok = load_small(args.base)
    small_sha = sha256(args.base)
    d, ds = model.config.hidden_size, 640
    bridge = BridgeNet(d, ds, [20], heads=2, a=64, r=16)
    with torch.no_grad():
        for L in bridge.layers:
            nn.init.normal_(L.o.weight, std=2.0)
            nn.init.normal_(L.up.weight, std=0.3)
    bridge.round_to_f16()
    S = 7
    src = torch.randn(S, ds).half().float()
    chat = tok.apply_chat_template([{"role": "user", "content": "What is the capital of Azerbaijan?"}], add_generation_prompt=True)
    chat = chat["input_ids"] if isinstance(chat, dict) or hasattr(chat, "keys") else chat
    start = [i for i, t in enumerate(chat) if t == 1][-2]
    upper = Upper(model, 0)
    ids = torch.tensor([chat])
    with torch.no_grad():
        h = model.model.embed_tokens(ids)
        write = torch.zeros(1, len(chat))
        write[0, start:] = 1
        mem = bridge.proj(src[None])
        with_bridge = model.lm_head(upper.forward(h, bridge, mem, torch.zeros(1, S, dtype=torch.bool), write))[0, -1]
        without = model.lm_head(upper.forward(h))[0, -1]
        reference = model(input_ids=ids).logits[0, -1]
    print(f"manual forward vs transformers: max |Δ| {float((without - reference).abs().max()):.2e}")
    print(f"bridge changes the last logits by rms {float((with_bridge - without).pow(2).mean().sqrt()):.3f}")
    os.makedirs(args.out_dir, exist_ok=True)
    bridge.write(os.path.join(args.out_dir, "random.bridge.gguf"), small_sha, "0" * 64, "none.gguf", "random")
    src.numpy().astype(np.float32).tofile(os.path.join(args.out_dir, "source_states.f32"))
    with_bridge.numpy().astype(np.float32).tofile(os.path.join(args.out_dir, "logits_with_bridge.f32"))
    without.numpy().astype(np.float32).tofile(os.path.join(args.out_dir, "logits_without_bridge.f32"))
    json.dump({"prompt": "What is the capital of Azerbaijan?", "tokens": chat, "from": start, "source_count": S,
               "source_width": ds}, open(os.path.join(args.out_dir, "case.json"), "w"), indent=1)
    print(f"fixture -> {args.out_dir}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["bridge", "control", "fixture"])
    p.add_argument("--base", default=BASE)
    p.add_argument("--states", help="braid source-states output")
    p.add_argument("--source-file", default="models/gemma-3-270m-q4_k_m.gguf", help="the source GGUF (its name goes in the bridge)")
    p.add_argument("--train", default="prompts/knowledge/train.jsonl")
    p.add_argument("--dev", default="prompts/knowledge/dev.jsonl")
    p.add_argument("--dev-limit", type=int, default=128)
    p.add_argument("--blocks", default="12,16,20,24", help="small-model blocks whose input each bridge layer adds to")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--attention", type=int, default=256, help="attention width")
    p.add_argument("--adapter", type=int, default=64, help="adapter width")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--control-lr", type=float, default=5e-5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--align", action="store_true", help="start the projection from the two vocabularies' least-squares alignment")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--out", default="models/knowledge.bridge.gguf")
    p.add_argument("--name", default="knowledge")
    p.add_argument("--eval", default="prompts/knowledge/test.jsonl", help="control: questions to answer")
    p.add_argument("--answers", default="/tmp/control.answers.jsonl")
    p.add_argument("--max-tokens", type=int, default=20)
    p.add_argument("--out-dir", default="Tests/BraidTests/Fixtures/bridge")
    args = p.parse_args()
    if args.mode == "fixture":
        fixture(args)
    else:
        train(args, args.mode)


if __name__ == "__main__":
    main()
