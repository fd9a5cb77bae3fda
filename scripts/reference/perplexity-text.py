#!/usr/bin/env python3
"""Assembles prompts/perplexity.txt (about 50 KB of English) from the task suites' prompts in
../shared/tasks: product reviews (sentiment), short biographies (json) and everyday questions
(general), instructions stripped, shuffled with a fixed seed into paragraphs. Deterministic:
the same suites give the same file. Usage: scripts/reference/perplexity-text.py [TASKS_DIR] [OUT]"""
import json, random, re, sys
from pathlib import Path

root = Path(__file__).resolve().parents[2]
tasks = Path(sys.argv[1]) if len(sys.argv) > 1 else root.parent / "shared" / "tasks"
out = Path(sys.argv[2]) if len(sys.argv) > 2 else root / "prompts" / "perplexity.txt"

def prompts(name):
    return [json.loads(line)["prompt"] for line in open(tasks / name, encoding="utf-8")]

def review(p):
    # "Classify the sentiment of this review as positive or negative: TEXT" or "Review: TEXT Is this review …?"
    m = re.match(r".*?(?:negative|Review)\s*:\s*(.*)", p)
    text = m.group(1) if m else p
    return re.sub(r"\s*(Is|Was|Would) (this|the) review .*$", "", text).strip()

def biography(p):
    return p.split(":", 1)[1].strip() if ":" in p else p

rng = random.Random(20240512)
sentences = [review(p) for p in prompts("sentiment.train.jsonl")][:700]
sentences += [biography(p) for p in prompts("json.train.jsonl")][:500]
sentences += prompts("general.dev.jsonl")
sentences = [s for s in dict.fromkeys(sentences) if s]
rng.shuffle(sentences)
paragraphs, i = [], 0
while i < len(sentences):
    n = rng.randint(4, 9)
    paragraphs.append(" ".join(sentences[i:i + n]))
    i += n
text = "\n\n".join(paragraphs) + "\n"
out.write_text(text, encoding="utf-8")
print(f"{out}: {len(text.encode())} bytes, {len(paragraphs)} paragraphs")
