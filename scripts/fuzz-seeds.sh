#!/usr/bin/env bash
# Regenerates the fuzz seed corpora in Fuzz/corpus/TARGET/ (committed, each file a few KB):
# text seeds from the repository's own files (merge configs, prompt and task JSONL, tokenizer
# cases, the server tests' request bodies), binary seeds (GGUF models, task vectors, a gate,
# safetensors) written by braid-fuzz from tiny synthetic models. Crash reproducers
# (Fuzz/corpus/*/crash-*) are kept.
#   scripts/fuzz-seeds.sh [BRAID_FUZZ_BINARY]   (default: the ordinary release build's, made if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${1:-.build/release/braid-fuzz}
if [ ! -x "$BIN" ]; then
    swift build -c release --product braid-fuzz 2>&1 | grep -v '^\[' || true
fi

for t in gguf taskvector router gate safetensors merge-yaml jsonl tokenizer chat; do
    mkdir -p "Fuzz/corpus/$t"
    find "Fuzz/corpus/$t" -type f ! -name 'crash-*' -delete
done
"$BIN" --write-seeds Fuzz/corpus

python3 - <<'PY'
import glob, json, os

def put(target, name, text):
    path = f"Fuzz/corpus/{target}/{name}"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"{path}: {len(text.encode())} bytes")

# merge-yaml: every config the repository ships.
for p in sorted(glob.glob("prompts/merges/*.yaml")):
    put("merge-yaml", os.path.basename(p), open(p, encoding="utf-8").read())

# jsonl: the first lines of each prompt file and task suite (run, eval and AIM read these).
sources = sorted(glob.glob("prompts/*.jsonl")) + sorted(glob.glob("../shared/tasks/*.dev.jsonl"))
for p in sources:
    lines = open(p, encoding="utf-8").read().splitlines()[:3]
    put("jsonl", os.path.basename(p), "\n".join(lines) + "\n")
put("jsonl", "ids-and-escapes.jsonl",
    '{"id": "q1", "prompt": "Spell 470 in words.", "task": "spell", "answer": "four hundred seventy"}\n'
    '{"id": "q\\u00e9", "prompt": "caf\\u00e9 \\ud83d\\ude00 \\"quoted\\" <|im_end|>"}\n'
    '\n{"prompt": "", "answer": "{\\"a\\": [1, 2.5e3, null, true]}", "task": "json"}\n')

# tokenizer: the reference cases' texts, prompts, and scripts, marks, digits, specials, spaces.
cases = json.load(open("Tests/BraidTests/Fixtures/tokenizer_cases.json", encoding="utf-8"))
texts = list(dict.fromkeys(c["text"] for c in cases))
for i, t in enumerate(texts[:24]):
    put("tokenizer", f"case-{i:02d}.txt", t)
for i, line in enumerate(open("prompts/mixed-routes.jsonl", encoding="utf-8").read().splitlines()[:4]):
    put("tokenizer", f"prompt-{i}.txt", json.loads(line)["prompt"])
extra = {
    "unicode.txt": "naïve café — 東京 में 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🙂👍🏽 e\u0301 Ω≈ç√ \u200b\u00a0 ١٢٣ ½",
    "specials.txt": "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<|endoftext|><|im_start",
    "contractions.txt": "it's we're they've I'm you'll he'd 'S 'T  ' '' x'",
    "spaces.txt": "a  b\t\tc\n\n\n d   \r\n  e \u3000f      ",
    "digits.txt": "1234567890 3.14159 -42 1e10 0x1F 12,345,678",
    "long-word.txt": "supercalifragilisticexpialidocious" * 20,
}
for name, t in extra.items():
    put("tokenizer", name, t)

# chat: request bodies as clients send them (README, the server tests).
def user(t): return [{"role": "user", "content": t}]
bodies = {
    "basic.json": {"model": "braid", "messages": user("Add 250 and 317."), "temperature": 0},
    "routed.json": {"model": "braid", "messages": user("Spell 470 in words."), "braid": {"route": "auto", "interweave": "off"}},
    "blend.json": {"messages": user("Hi"), "braid": {"route": {"arith": 0.5, "json": 0.5}, "interweave": "learned"}},
    "pinned.json": {"model": "arith", "messages": [{"role": "system", "content": "Answer in French."}, *user("Say hello.")],
                    "max_tokens": 16, "top_p": 0.9, "top_k": 20, "min_p": 0.1, "seed": 7, "stop": ["\n", "###"]},
    "parts.json": {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is 74 "}, {"type": "text", "text": "times 9?"}]}]},
    "stream.json": {"model": "base", "messages": user("Tell me a story."), "max_tokens": 1500, "stream": True,
                    "stream_options": {"include_usage": True}, "logprobs": True, "top_logprobs": 3},
    "developer.json": {"messages": [{"role": "developer", "content": None}, {"role": "assistant", "content": "ok"}, *user("x")],
                       "max_completion_tokens": 4, "repeat_penalty": 1.1, "n": 1, "stop": "END"},
    "completion.json": {"model": "braid", "prompt": "Once upon a time", "max_tokens": 8, "logprobs": 2, "temperature": 0.7},
    "bad-types.json": {"messages": user("hi"), "temperature": "hot", "braid": {"route": 5}},
}
for name, b in bodies.items():
    put("chat", name, json.dumps(b, ensure_ascii=False))
PY
du -sh Fuzz/corpus
