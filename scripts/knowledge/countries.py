#!/usr/bin/env python3
"""The knowledge task of issue 17: country facts, questions, a country-level split, a scorer,
and the inputs and scoring of the no-training baselines. Python standard library only.

  python3 scripts/knowledge/countries.py check                 # validate the fact table, run the scorer's self-test
  python3 scripts/knowledge/countries.py build                 # write prompts/knowledge/{countries.json,train,dev,test}.jsonl
  python3 scripts/knowledge/countries.py inputs --split test --mode fewshot --out /tmp/k/test.fewshot.jsonl
  python3 scripts/knowledge/countries.py score --split test OUT.jsonl [--label NAME] [--json FILE] [--compact FILE]
  python3 scripts/knowledge/countries.py table A.json B.json ...  # markdown: relation x run, accuracy (correct/n)

Facts live in facts.py next to this file (see its docstring for the cell notation and DOUBTFUL for
the ambiguous rows). Nothing here answers a question: the table is used to make prompts (few-shot
examples come from TRAIN countries only) and to score a model's outputs.

Scoring (see docs/knowledge-task.md): the output is cut at its first newline (after leading
whitespace), normalised (Unicode NFKD with combining marks dropped, lower case, apostrophes and
periods removed, other punctuation turned into spaces, whitespace collapsed, a plural "s" dropped)
and is correct when it contains, as whole words, any accepted form of any accepted answer, where
  * an occurrence that lies wholly inside a mention of the asked country's own name does not count
    ("South Africa" does not answer "Which continent is South Africa in?"; "Kuwait City" does answer
    the capital of Kuwait);
  * a weak form (a bare unit such as "dollar" or "CFA franc") counts only when no word qualifies it
    (the word before it is one of UNQUALIFIED_BEFORE, or none) and the output names no other
    currency by a full (strong) form;
  * (country, relation) pairs whose canonical answer is the country's own name (the capitals of
    Singapore, Monaco, Luxembourg, San Marino, Djibouti) are left out of the question set.
"""
import argparse
import json
import os
import random
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from facts import COUNTRIES, DOUBTFUL  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
OUT_DIR = os.path.join(ROOT, "prompts", "knowledge")
RELATIONS = ["capital", "continent", "currency", "language"]
CONTINENTS = {"Africa", "Asia", "Europe", "North America", "South America", "Oceania", "Australia", "Australasia", "Eurasia"}
SPLIT_SEED = 1717
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
SHOTS = 4

# Phrasings per relation. {c}: the country mid-sentence ("the Netherlands"); {C}: sentence-initial.
# p0-p3 are the training phrasings; p4-p5 are held out: they appear only in dev and test, never in
# train, so that a trained model is also measured on wordings it was not trained on. (The issue's
# reviewers will use further phrasings this file does not have.)
PHRASINGS = {
    "capital": [
        "What is the capital of {c}?",
        "The capital city of {c} is",
        "Name the capital of {c}.",
        "Which city is the capital of {c}?",
        "Tell me the capital city of {c}.",
        "If you travel to the capital of {c}, which city are you in?",
    ],
    "continent": [
        "Which continent is {c} in?",
        "{C} is located on the continent of",
        "On which continent is {c}?",
        "Name the continent where {c} is.",
        "What continent does {c} belong to?",
        "Tell me which continent {c} is part of.",
    ],
    "currency": [
        "What is the currency of {c}?",
        "The official currency of {c} is",
        "Name the currency used in {c}.",
        "Which currency do people use in {c}?",
        "What money is used in {c}?",
        "If you buy something in {c}, what currency do you pay in?",
    ],
    "language": [
        "What is the official language of {c}?",
        "The official language of {c} is",
        "Name an official language of {c}.",
        "Which language is official in {c}?",
        "What language do people speak in {c}?",
        "Tell me the main official language of {c}.",
    ],
}
HELD_OUT = {4, 5}
# A weak form (a bare currency unit) counts only after one of these words or at the start: "the
# dollar", "is dollar", "uses the franc" count; "Malaysian dollar", "Central African CFA franc" do not.
UNQUALIFIED_BEFORE = {"the", "a", "an", "is", "its", "their", "called", "named", "use", "uses", "used",
                      "in", "and", "or", "was", "are", "currency", "answer"}


# ---------------------------------------------------------------------------------------------
# The table

def parse_cell(cell):
    """'A/a1/~w|B' -> [[(form, weak), ...], ...] (answers, each a list of surface forms)."""
    answers = []
    for ans in cell.split("|"):
        forms = []
        for f in ans.split("/"):
            f = f.strip()
            weak = f.startswith("~")
            forms.append((f[1:] if weak else f, weak))
        answers.append(forms)
    return answers


def load_table():
    rows = []
    for name, the, other, capital, continent, currency, language in COUNTRIES:
        rows.append({
            "country": name,
            "the": the,
            "names": [name] + [n for n in other.split("/") if n],
            "capital": parse_cell(capital),
            "continent": parse_cell(continent),
            "currency": parse_cell(currency),
            "language": parse_cell(language),
        })
    return rows


def in_sentence(row):
    return ("the " if row["the"] else "") + row["country"]


def question(row, relation, p):
    t = PHRASINGS[relation][p]
    c = in_sentence(row)
    return t.replace("{c}", c).replace("{C}", c[0].upper() + c[1:])


def canonical(row, relation):
    return row[relation][0][0][0]


def excluded(row, relation):
    """The question cannot be scored: its canonical answer is the country's own name."""
    names = {normalize(n) for n in row["names"]}
    return normalize(canonical(row, relation)) in names


def slug(name):
    return "-".join(normalize(name).split())


# ---------------------------------------------------------------------------------------------
# Scoring

def normalize(s):
    s = unicodedata.normalize("NFKD", s)
    s = "".join(ch for ch in s if not unicodedata.combining(ch))
    s = s.lower()
    out = []
    for ch in s:
        if ch in "'’ʻ`´.":
            continue
        out.append(ch if ch.isalnum() else " ")
    return " ".join("".join(out).split())


def words(s):
    """Normalised words with a plain plural "s" dropped (tokens over 3 letters, not "ss"), applied to
    outputs and answers alike: "US dollars" matches "US dollar"."""
    return [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in normalize(s).split()]


def occurrences(tokens, form_tokens):
    n = len(form_tokens)
    return [i for i in range(len(tokens) - n + 1) if tokens[i:i + n] == form_tokens] if n else []


def strong_forms(rows, relation):
    """Every full (non-weak) form of every answer of the relation, with the answers it belongs to."""
    out = {}
    for r in rows:
        for ans in r[relation]:
            for f, weak in ans:
                if not weak:
                    out.setdefault(" ".join(words(f)), set()).add((r["country"], normalize(ans[0][0])))
    return out


class Scorer:
    def __init__(self, rows):
        self.rows = {r["country"]: r for r in rows}
        self.strong = {rel: strong_forms(rows, rel) for rel in RELATIONS}

    @staticmethod
    def first_line(output):
        return output.lstrip().split("\n", 1)[0]

    def is_correct(self, country, relation, output):
        row = self.rows[country]
        tokens = words(self.first_line(output))
        covered = set()
        for n in row["names"]:
            nt = words(n)
            for i in occurrences(tokens, nt):
                covered.update(range(i, i + len(nt)))
        accepted = {" ".join(words(f)) for ans in row[relation] for f, _ in ans}

        def found(form, unqualified=False):
            ft = form.split()
            for i in occurrences(tokens, ft):
                if set(range(i, i + len(ft))) <= covered:
                    continue
                if unqualified and i > 0 and tokens[i - 1] not in UNQUALIFIED_BEFORE:
                    continue
                return True
            return False

        weak_hit = False
        for ans in row[relation]:
            for f, weak in ans:
                nf = " ".join(words(f))
                if found(nf, unqualified=weak):
                    if not weak:
                        return True
                    weak_hit = True
        if not weak_hit:
            return False
        # A bare unit counts only if no other country's currency is named in full.
        for form in self.strong[relation]:
            if form not in accepted and found(form):
                return False
        return True


# ---------------------------------------------------------------------------------------------
# Split and questions

def split_countries(rows):
    """Country-level split, stratified by (first) continent, seeded and fixed."""
    rng = random.Random(SPLIT_SEED)
    by_cont = {}
    for r in rows:
        by_cont.setdefault(canonical(r, "continent"), []).append(r["country"])
    split = {}
    for cont in sorted(by_cont):
        names = sorted(by_cont[cont])
        rng.shuffle(names)
        n = len(names)
        n_test = round(n * SPLIT_FRACTIONS[2])
        n_dev = round(n * SPLIT_FRACTIONS[1])
        for i, c in enumerate(names):
            split[c] = "test" if i < n_test else "dev" if i < n_test + n_dev else "train"
    return split


def questions(rows, split, which):
    out = []
    for r in rows:
        if split[r["country"]] != which:
            continue
        for rel in RELATIONS:
            if excluded(r, rel):
                continue
            for p in range(len(PHRASINGS[rel])):
                if which == "train" and p in HELD_OUT:
                    continue
                forms = [f for ans in r[rel] for f, w in ans if not w]
                out.append({
                    "id": f"{which}-{rel}-{slug(r['country'])}-p{p}",
                    "split": which,
                    "country": r["country"],
                    "relation": rel,
                    "phrasing": f"p{p}",
                    "heldout": p in HELD_OUT,
                    "prompt": question(r, rel, p),
                    "answer": canonical(r, rel),
                    "aliases": forms[1:],
                    "weak": [f for ans in r[rel] for f, w in ans if w],
                })
    return out


def fewshot_prompt(q, rows_by_name, train_names, shots=SHOTS):
    """SHOTS examples from TRAIN countries, same relation and phrasing, drawn per question id."""
    rng = random.Random(f"{SPLIT_SEED}:{q['id']}")
    rel, p = q["relation"], int(q["phrasing"][1:])
    pool = [c for c in train_names if not excluded(rows_by_name[c], rel)]
    lines = []
    for c in rng.sample(pool, shots):
        r = rows_by_name[c]
        lines.append(f"Q: {question(r, rel, p)}\nA: {canonical(r, rel)}\n")
    lines.append(f"Q: {q['prompt']}\nA:")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Commands

def cmd_check(_args):
    rows = load_table()
    errors = []
    names = [r["country"] for r in rows]
    if len(rows) != 193:
        errors.append(f"{len(rows)} rows, expected the 193 UN member states")
    if len(set(names)) != len(names):
        errors.append("duplicate country names")
    all_names = [n for r in rows for n in {normalize(x) for x in r["names"]}]
    dup = {n for n in all_names if all_names.count(n) > 1}
    if dup:
        errors.append(f"a name given to two countries: {sorted(dup)}")
    for r in rows:
        for rel in RELATIONS:
            forms = [f for ans in r[rel] for f, _ in ans]  # spellings that normalise alike are fine
            if not r[rel] or any(not normalize(f) for f in forms):
                errors.append(f"{r['country']} {rel}: empty form")
            if len(set(forms)) != len(forms):
                errors.append(f"{r['country']} {rel}: a form twice: {forms}")
            if rel != "currency" and any(w for ans in r[rel] for _, w in ans):
                errors.append(f"{r['country']} {rel}: weak forms only for currencies")
            if r[rel][0][0][1]:
                errors.append(f"{r['country']} {rel}: the canonical form must not be weak")
        for ans in r["continent"]:
            if ans[0][0] not in CONTINENTS:
                errors.append(f"{r['country']}: unknown continent {ans[0][0]}")
    for (c, rel) in DOUBTFUL:
        if c not in names or rel not in RELATIONS:
            errors.append(f"DOUBTFUL names an unknown row {c}/{rel}")
    # Scorer self-test: fixed cases, each (country, relation, output, expected).
    s = Scorer(rows)
    cases = [
        ("France", "capital", " Paris\nQ: What is", True),
        ("France", "capital", "The capital of France is Paris.", True),
        ("France", "capital", "Lyon", False),
        ("Switzerland", "capital", "Berne", True),
        ("Switzerland", "capital", "Zurich", False),
        ("Bolivia", "capital", "La Paz", True),
        ("Kuwait", "capital", "Kuwait City", True),
        ("Kuwait", "capital", "Kuwait", False),
        ("Guinea-Bissau", "capital", "Guinea-Bissau", False),
        ("Guinea-Bissau", "capital", "Bissau", True),
        ("South Africa", "continent", "South Africa", False),
        ("South Africa", "continent", "South Africa is in Africa.", True),
        ("Brazil", "capital", "Brasilia", True),
        ("Brazil", "capital", "Brasília", True),
        ("Chad", "capital", "Ndjamena", True),
        ("Chad", "capital", "N’Djamena", True),
        ("Antigua and Barbuda", "capital", "Saint John’s", True),
        ("United States", "capital", "Washington DC", True),
        ("United States", "currency", "The dollar.", True),
        ("United States", "currency", "US Dollar (USD)", True),
        ("Ecuador", "currency", "US dollars", True),
        ("Denmark", "currency", "the Danish Kroner (DKK)", True),
        ("Paraguay", "capital", "Asunción", True),
        ("Canada", "currency", "the US dollar", False),
        ("Canada", "currency", "The Canadian dollar", True),
        ("Canada", "currency", "dollar", True),
        ("Senegal", "currency", "CFA franc", True),
        ("Senegal", "currency", "The West African CFA, which is", True),
        ("Senegal", "currency", "the Central African CFA franc", False),
        ("Gabon", "currency", "the CFA franc (XAF)", True),
        ("Switzerland", "currency", "CFA franc", False),
        ("Brunei", "currency", "the Bahamal, a derivative of the Malaysian dollar", False),
        ("Brunei", "currency", "Brunei dollar", True),
        ("Russia", "continent", "Eurasia", True),
        ("France", "continent", "Eurasia", False),
        ("Switzerland", "currency", "the franc", True),
        ("Sierra Leone", "currency", "Sierra Leone", False),
        ("Sierra Leone", "currency", "leone", True),
        ("Niger", "capital", "Abuja", False),
        ("Nigeria", "language", "English", True),
        ("Belgium", "language", "Flemish", True),
        ("Egypt", "continent", "Africa", True),
        ("Egypt", "continent", "north africa", True),
        ("Egypt", "continent", "South America", False),
        ("Mexico", "continent", "Central America", False),
        ("Vietnam", "currency", "Vietnamese đồng", True),
        ("Tonga", "capital", "Nuku'alofa", True),
    ]
    for c, rel, out, want in cases:
        got = s.is_correct(c, rel, out)
        if got != want:
            errors.append(f"scorer: {c}/{rel} {out!r}: got {got}, want {want}")
    split = split_countries(rows)
    counts = {k: sum(1 for v in split.values() if v == k) for k in ("train", "dev", "test")}
    print(f"{len(rows)} countries; split {counts}; {len(cases)} scorer cases; {len(DOUBTFUL)} doubtful rows noted")
    print("left out (canonical answer is the country's own name):",
          ", ".join(f"{r['country']}/{rel}" for r in rows for rel in RELATIONS if excluded(r, rel)))
    for e in errors:
        print("ERROR:", e)
    return 1 if errors else 0


def write_jsonl(path, items):
    with open(path, "w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it, ensure_ascii=False) + "\n")


def cmd_build(_args):
    if cmd_check(_args):
        return 1
    rows = load_table()
    split = split_countries(rows)
    os.makedirs(OUT_DIR, exist_ok=True)
    table = []
    for r in rows:
        entry = {"country": r["country"], "names": r["names"], "split": split[r["country"]]}
        for rel in RELATIONS:
            entry[rel] = [[("~" if w else "") + f for f, w in ans] for ans in r[rel]]
            if (r["country"], rel) in DOUBTFUL:
                entry.setdefault("notes", {})[rel] = DOUBTFUL[(r["country"], rel)]
        table.append(entry)
    with open(os.path.join(OUT_DIR, "countries.json"), "w", encoding="utf-8") as f:
        json.dump({"seed": SPLIT_SEED, "relations": RELATIONS, "phrasings": PHRASINGS,
                   "held_out_phrasings": sorted(f"p{p}" for p in HELD_OUT), "countries": table},
                  f, ensure_ascii=False, indent=1)
        f.write("\n")
    for which in ("train", "dev", "test"):
        qs = questions(rows, split, which)
        write_jsonl(os.path.join(OUT_DIR, f"{which}.jsonl"), qs)
        print(f"{which}: {sum(1 for v in split.values() if v == which)} countries, {len(qs)} questions")
    print("test countries:", ", ".join(sorted(c for c, v in split.items() if v == "test")))
    return 0


def cmd_inputs(args):
    """braid run input: zero-shot (the question alone) or few-shot (Q:/A: examples from train)."""
    rows = load_table()
    split = split_countries(rows)
    by_name = {r["country"]: r for r in rows}
    train = sorted(c for c, v in split.items() if v == "train")
    qs = questions(rows, split, args.split)
    out = []
    for i, q in enumerate(qs):
        prompt = fewshot_prompt(q, by_name, train) if args.mode == "fewshot" else q["prompt"]
        line = {"id": q["id"], "prompt": prompt}
        if args.mode == "swapped":
            # Control (e) of a bridge: its source reads the same question about the next country
            # of the split (same relation and phrasing), so only the country's identity differs.
            same = [o for o in qs if o["relation"] == q["relation"] and o["phrasing"] == q["phrasing"]]
            line["source"] = same[(same.index(q) + 1) % len(same)]["prompt"]
        out.append(line)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_jsonl(args.out, out)
    print(f"{len(out)} prompts -> {args.out}")
    return 0


def cmd_score(args):
    rows = load_table()
    split = split_countries(rows)
    s = Scorer(rows)
    qs = {q["id"]: q for q in questions(rows, split, args.split)}
    outs = {}
    with open(args.output, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                o = json.loads(line)
                if "output" in o:
                    outs[o["id"]] = o["output"]
    missing = [i for i in qs if i not in outs]
    if missing:
        print(f"warning: {len(missing)} of {len(qs)} questions have no output (first: {missing[0]})", file=sys.stderr)
    res = {}
    compact = []
    for i, q in qs.items():
        if i not in outs:
            continue
        ok = s.is_correct(q["country"], q["relation"], outs[i])
        compact.append({"id": i, "output": Scorer.first_line(outs[i]).strip(), "correct": ok})
        for key in (q["relation"], "all"):
            for sub in ("all", "heldout" if q["heldout"] else "seen", q["phrasing"]):
                k = (key, sub)
                a, n = res.get(k, (0, 0))
                res[k] = (a + ok, n + 1)
    label = args.label or os.path.basename(args.output)
    print(f"{label} on {args.split}: relation | all phrasings | seen p0-p3 | held-out p4-p5 | p0 only")
    for rel in RELATIONS + ["all"]:
        cells = []
        for sub in ("all", "seen", "heldout", "p0"):
            a, n = res.get((rel, sub), (0, 0))
            cells.append(f"{a}/{n} = {a / n:.3f}" if n else "-")
        print(f"  {rel:9s} | " + " | ".join(cells))
    if args.json:
        summary = {f"{rel}.{sub}": {"correct": a, "n": n} for (rel, sub), (a, n) in sorted(res.items())}
        with open(args.json, "w") as f:
            json.dump({"label": label, "split": args.split, "results": summary}, f, indent=1)
            f.write("\n")
    if args.compact:
        write_jsonl(args.compact, compact)
    return 0


def cmd_table(args):
    """A markdown table (relation x run) from `score --json` files: accuracy and correct/n."""
    runs = []
    for path in args.summaries:
        with open(path) as f:
            runs.append(json.load(f))
    subsets = [("all", "all six phrasings"), ("seen", "p0-p3"), ("heldout", "held-out p4-p5"), ("p0", "p0 only")]
    print("| relation | phrasings | " + " | ".join(r["label"] for r in runs) + " |")
    print("|---|---|" + "---|" * len(runs))
    for rel in RELATIONS + ["all"]:
        for sub, text in subsets:
            cells = []
            for r in runs:
                c = r["results"].get(f"{rel}.{sub}")
                cells.append(f"{100 * c['correct'] / c['n']:.1f} % ({c['correct']}/{c['n']})" if c else "-")
            name = f"**{rel}**" if sub == "all" else ""
            print(f"| {name} | {text} | " + " | ".join(cells) + " |")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check")
    sub.add_parser("build")
    p = sub.add_parser("inputs")
    p.add_argument("--split", default="test", choices=["train", "dev", "test"])
    p.add_argument("--mode", default="zeroshot", choices=["zeroshot", "fewshot", "swapped"],
                   help="swapped: zero-shot, with a \"source\" field asking about another country (a bridge's control)")
    p.add_argument("--out", required=True)
    p = sub.add_parser("score")
    p.add_argument("output", help="braid run output JSONL ({id, output})")
    p.add_argument("--split", default="test", choices=["train", "dev", "test"])
    p.add_argument("--label")
    p.add_argument("--json", help="write the counts as JSON")
    p.add_argument("--compact", help="write {id, output's first line, correct} per question")
    p = sub.add_parser("table")
    p.add_argument("summaries", nargs="+", help="files written by score --json")
    args = ap.parse_args()
    return {"check": cmd_check, "build": cmd_build, "inputs": cmd_inputs, "score": cmd_score,
            "table": cmd_table}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
