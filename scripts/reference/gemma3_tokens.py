#!/usr/bin/env python3
"""llama.cpp's token ids for Gemma 3's tokenizer on a fixed set of test strings.

Writes Tests/BraidTests/Fixtures/gemma3_tokens.json, which TokenizerTests (Gemma) compares
braid's Tokenizer against. The strings are made here with a fixed seed (hand-picked ones, then
random mixtures of scripts, whitespace runs, numbers, emoji, code, markdown, special-token text
and characters the vocabulary lacks); the ids come from llama-tokenize, built from the
llama.cpp vendored in llama-cpp-python 0.3.36, in both of its modes: its default (BOS added,
special tokens parsed) and --no-parse-special (user-defined tokens, such as Gemma's runs of
spaces and newlines, are still split out; control tokens are plain text).

llama-tokenize loads the vocabulary once per call, so the strings are tokenized in batches:
one file of strings joined by "[multimodal]", a user-defined token (split out in both modes,
and matching nothing else of the vocabulary across a boundary); the output is cut at its id.
Each SentencePiece fragment is encoded on its own in llama.cpp, so this equals tokenizing each
string alone; the script checks that on a sample of strings tokenized one by one.

Usage: python3 scripts/reference/gemma3_tokens.py [--llama-tokenize PATH] [--model PATH]
Needs models/gemma-3-270m-q4_k_m.gguf (bash scripts/setup.sh --model gemma3-270m).
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
SEPARATOR = "[multimodal]"
SEPARATOR_ID = 5
SEED = 15

HAND_PICKED = [
    "", " ", "  ", "   ", "\n", "\n\n", "\t", " \t \n ", "a", " a", "  a", "a ", "a  ",
    "Hello world", " Hello world", "Hello  world", "Hello   world   ", "hello\nworld\n",
    "Héllo wörld, naïve café", "Ångström ÆØÅ æøå ß ẞ", "Ελληνικά κείμενα", "Русский текст, ёжик",
    "Українська мова", "日本語のテキストと中文", "中华人民共和国成立于1949年", "한국어 텍스트입니다",
    "ภาษาไทยไม่มีช่องว่าง", "हिन्दी भाषा", "বাংলা ভাষা", "தமிழ் மொழி", "ქართული ენა", "Հայերեն",
    "አማርኛ ቋንቋ", "مرحبا بالعالم", "שלום עולם", "فارسی زبان", "Tiếng Việt có dấu", "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ",
    "ᠮᠣᠩᠭᠣᠯ", "ꦗꦮ", "𐀀𐀁𐀂 Linear B", "𒀀𒀁 cuneiform", "𓀀𓀁 hieroglyphs", "𠀀𠀁𠀂 CJK extension B",
    "\ue000\ue001 private use", "\U000f0000 plane 15", "\U0010fffd", "\u0001\u0002\u007f controls",
    "a\u0000b", "\u200b zero width \u200c\u200d", "\ufeffBOM", "e\u0301 combining", "\u0301\u0302\u0303",
    "emoji 👩‍👩‍👧‍👦 and 🇫🇷 flags 🎉", "👍🏽👍🏿 skin tones", "🏳️‍🌈 🏴‍☠️ ❤️‍🔥", "🧑🏾‍💻 at work",
    "😀😃😄😁😆😅🤣😂", "1234567890", "3.14159265358979", "-0.000001e-10", "1,234,567.89",
    "12345678901234567890123456789012345678901234567890", "0x1F 0b1010 0o17", "2024-06-15T12:34:56Z",
    "tabs\tand   spaces   \n\n\n  trailing   ", "\t\t\tindented\n\t\t\t\tmore",
    "func f(x: Int) -> Int {\n    return x * 2 // double\n}",
    "def f(x):\n    if x > 0:\n        return [i ** 2 for i in range(x)]\n    return None\n",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
    '{"name": "braid", "version": [1, 2, 3], "ok": true, "x": null}',
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "# Title\n\n## Section\n\n- item one\n- item two\n\n**bold** _italic_ `code`\n\n```swift\nlet x = 1\n```\n",
    "| a | b |\n|---|---|\n| 1 | 2 |", "> quote\n>> nested", "[link](https://example.com/path?q=1&r=2#frag)",
    "<start_of_turn>user\n", "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
    "<end_of_turn>", "<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "<bos><bos>", "text<eos>more",
    "<unused0> <unused99> <unused6241>", "<start_of_image>", "<end_of_image>", "<start_of_image><end_of_image>",
    "<table><tr><td>1</td></tr></table>", "<h1>Title</h1><p>para</p>", "<b>bold</b> <i>it</i> <code>x</code>",
    "<0x41><0x0A>", "<0xZZ>", "<start_of_turn", "start_of_turn>", "<<start_of_turn>>", "<start_of_turn><start_of_turn>",
    "▁ already escaped ▁▁", "▁", "don't I'LL we've they'd", "ALL CAPS TEXT", "MiXeD cAsE",
    "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
    "a" * 100, "ab" * 100, " " * 100, "\n" * 50, "\t" * 40, "= " * 40, "-" * 80, "." * 33,
    "😀" * 30, "日本" * 60, "\r\n\r\n", "line\rreturn", "\x0b\x0c vertical tab and form feed",
]

SCRIPTS = [
    "the quick brown fox jumps over the lazy dog", "Lorem ipsum dolor sit amet consectetur",
    "Größenordnung Straße Übermäßig", "façade déjà vu naïveté", "Ελληνικά αλφάβητο", "Москва столица России",
    "東京は日本の首都です", "北京是中国的首都", "서울은 한국의 수도입니다", "กรุงเทพมหานคร", "नई दिल्ली भारत",
    "القاهرة عاصمة مصر", "ירושלים", "İstanbul Türkiye", "Warszawa Polska łódź źdźbło", "Reykjavík Ísland þorp",
]
EMOJI = ["🎉", "👩‍👩‍👧‍👦", "🇫🇷", "🇯🇵", "👍🏽", "🏳️‍🌈", "❤️", "🤖", "🧑🏾‍💻", "🐍", "✅", "⚠️", "🫠", "🪿"]
RARE = ["𐀀", "𒀀", "𓀀", "𠀀", "\ue000", "\U000f0001", "\u0001", "\u007f", "\u0378", "ꙮ", "𝔘𝔫𝔦", "\U0001d11e", "ᚠᚢᚦ", "⠁⠃⠉"]
CODE = ["if (x == 0) {", "return y;", "}", "for i in range(10):", "x += 1", "let s = \"str\"", "a[i] = b[j];",
        "// comment", "/* block */", "#define N 100", "import os", "fn main() {}", "=>", "!==", "&&", "||", "::"]
MARKDOWN = ["# ", "## ", "- ", "* ", "1. ", "**", "_", "`", "```", "> ", "[x](y)", "---", "| a | b |"]
SPECIAL = ["<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<start_of_image>", "<unused7>", "<table>",
           "</td>", "<0x41>", "user\n", "model\n"]
WHITESPACE = [" ", "  ", "   ", "\t", "\n", "\n\n", " \n", "\t\t", "\r\n", " " * 7, " " * 33, "\n" * 3, "\u3000", "\u00a0"]


def random_string(rng):
    parts = []
    for _ in range(rng.randint(1, 12)):
        kind = rng.random()
        if kind < 0.25:
            words = rng.choice(SCRIPTS).split(" ")
            start = rng.randrange(len(words))
            parts.append(" ".join(words[start:start + rng.randint(1, 4)]))
        elif kind < 0.37:
            parts.append(rng.choice(WHITESPACE) * rng.randint(1, 3))
        elif kind < 0.47:
            parts.append("".join(rng.choice("0123456789") for _ in range(rng.randint(1, 30))))
        elif kind < 0.55:
            parts.append("".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 4))))
        elif kind < 0.63:
            parts.append(rng.choice(RARE) * rng.randint(1, 3))
        elif kind < 0.72:
            parts.append(rng.choice(CODE))
        elif kind < 0.79:
            parts.append(rng.choice(MARKDOWN))
        elif kind < 0.86:
            parts.append(rng.choice(SPECIAL))
        elif kind < 0.93:
            # random code points from a few blocks, letters and punctuation
            lo, hi = rng.choice([(0x21, 0x7E), (0xA1, 0x24F), (0x370, 0x4FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
                                 (0x1F300, 0x1F6FF), (0x2000, 0x206F), (0x0600, 0x06FF)])
            parts.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 10))))
        else:
            parts.append(rng.choice(["'s", "'t", "n't", "?", "!", ",", ".", "...", "(", ")", "\"", "—", "…", "«»"]))
        if rng.random() < 0.5:
            parts.append(" ")
    s = "".join(parts)
    if rng.random() < 0.15:
        s = " " * rng.randint(1, 3) + s
    return s


def strings():
    rng = random.Random(SEED)
    out = list(HAND_PICKED)
    while len(out) < 560:
        out.append(random_string(rng))
    # A few long ones: mixed text, and long runs without spaces (the merge queue at length).
    out.append(" ".join(random_string(rng) for _ in range(60)))
    out.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyzeeeaaiioo") for _ in range(3000)))
    out.append("".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(1500)))
    out.append("1234567890" * 200)
    seen, unique = set(), []
    for s in out:
        if s not in seen and SEPARATOR not in s:
            seen.add(s)
            unique.append(s)
    return unique


def tokenize(tool, model, text, parse_special):
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        f.write(text.encode("utf-8"))
        path = f.name
    try:
        cmd = [tool, "-m", model, "-f", path, "--ids", "--log-disable", "--no-escape"]
        if not parse_special:
            cmd.append("--no-parse-special")
        out = subprocess.run(cmd, check=True, capture_output=True).stdout.decode()
    finally:
        os.unlink(path)
    return json.loads(out.strip().splitlines()[-1])


def tokenize_batch(tool, model, texts, parse_special):
    ids = tokenize(tool, model, SEPARATOR.join(texts), parse_special)
    assert ids[0] == 2, "llama-tokenize did not add BOS"
    pieces, current = [], []
    for i in ids[1:]:
        if i == SEPARATOR_ID:
            pieces.append(current)
            current = []
        else:
            current.append(i)
    pieces.append(current)
    assert len(pieces) == len(texts), f"{len(pieces)} pieces for {len(texts)} strings"
    return [[2] + p for p in pieces]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-tokenize", default="/work/llama/build/bin/llama-tokenize")
    ap.add_argument("--model", default=os.path.join(ROOT, "models/gemma-3-270m-q4_k_m.gguf"))
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests/BraidTests/Fixtures/gemma3_tokens.json"))
    ap.add_argument("--check-alone", type=int, default=30, help="strings also tokenized one by one, per mode")
    args = ap.parse_args()
    if not os.path.exists(args.model):
        sys.exit(f"{args.model} is missing: run bash scripts/setup.sh --model gemma3-270m")

    texts = strings()
    cases = []
    for parse_special in (True, False):
        ids = []
        for k in range(0, len(texts), 100):
            ids += tokenize_batch(args.llama_tokenize, args.model, texts[k:k + 100], parse_special)
        rng = random.Random(SEED + parse_special)
        for i in rng.sample(range(len(texts)), min(args.check_alone, len(texts))):
            alone = tokenize(args.llama_tokenize, args.model, texts[i], parse_special)
            assert alone == ids[i], f"batched and alone differ for {texts[i]!r}: {ids[i]} vs {alone}"
        cases += [{"text": t, "parse_special": parse_special, "ids": i} for t, i in zip(texts, ids)]

    with open(args.model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    doc = {
        "model": os.path.basename(args.model),
        "model_sha256": sha,
        "tokenizer": "llama-tokenize (llama.cpp vendored in llama-cpp-python 0.3.36), --no-escape, BOS added",
        "seed": SEED,
        "strings": len(texts),
        "cases": cases,
    }
    # One case a line, so a change in the ids shows as a change of that line.
    head = json.dumps({k: v for k, v in doc.items() if k != "cases"}, ensure_ascii=False)[:-1]
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(head + ', "cases": [\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n]}\n")
    print(f"{len(texts)} strings, {len(cases)} cases -> {args.out}")


if __name__ == "__main__":
    main()
