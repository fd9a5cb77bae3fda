#!/usr/bin/env python3
"""Writes new phrasing families for the four tasks (issue 18): prompts worded by templates that
appear in no task split (../shared/tasks) and nowhere in prompts/, each with the answer the task's
scorer checks (DESIGN.md §6: exact match; json compared as parsed objects).

Six families per task. The first three of each task ("fit") may be used to train or tune a gate;
the last three ("held-out") never are: gate designs are selected on them and reported on them.

    python3 scripts/phrasing-families.py            # writes prompts/families/{fit,held-out}.jsonl
    python3 scripts/phrasing-families.py --check    # only checks the templates are new

Each line: {"id", "task", "family", "prompt", "answer"}. Stdlib only, fixed seed.
"""
import argparse
import glob
import json
import os
import random

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PER_FAMILY = {"fit": 60, "held-out": 30}

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def words(n):
    """0–9999 as the spell task writes them: 'four thousand three hundred seventy-two'."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("-" + ONES[n % 10] if n % 10 else "")
    if n < 1000:
        return ONES[n // 100] + " hundred" + (" " + words(n % 100) if n % 100 else "")
    return words(n // 1000) + " thousand" + (" " + words(n % 1000) if n % 1000 else "")


# ---- arith: the task's ranges (3-digit sums and differences, 2-digit × 1-digit products), results ≥ 0.

def add_pair(r):
    return r.randint(100, 999), r.randint(100, 999)


def sub_pair(r):
    a, b = r.randint(100, 999), r.randint(100, 999)
    return max(a, b), min(a, b)


def mul_pair(r):
    return r.randint(10, 99), r.randint(2, 9)


def arith_mixed(r, forms):
    op = r.choice(list(forms))
    a, b = {"+": add_pair, "-": sub_pair, "*": mul_pair}[op](r)
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    return forms[op].format(a=a, b=b), str(value)


ARITH = {
    # fit
    "arith-coins": lambda r: arith_mixed(r, {
        "+": "I had {a} coins and then found {b} more. How many coins do I have now? Reply with just the number.",
        "-": "I had {a} coins and spent {b} of them. How many coins do I have now? Reply with just the number.",
        "*": "There are {a} boxes with {b} coins in each box. How many coins are there altogether? Reply with just the number."}),
    "arith-equals-what": lambda r: arith_mixed(r, {
        "+": "{a} plus {b} equals what?", "-": "{a} take away {b} equals what?", "*": "{a} multiplied by {b} equals what?"}),
    "arith-increase": lambda r: arith_mixed(r, {
        "+": "Increase {a} by {b}. Give only the result.", "-": "Decrease {a} by {b}. Give only the result.",
        "*": "Scale {a} up {b}-fold. Give only the result."}),
    # held-out
    "arith-quick-maths": lambda r: arith_mixed(r, {
        "+": "Quick maths question: {a} and {b} together make how many?", "-": "Quick maths question: {b} less than {a} is how many?",
        "*": "Quick maths question: {b} lots of {a} is how many?"}),
    "arith-outcome-colon": lambda r: arith_mixed(r, {
        "+": "Outcome of adding {a} to {b}:", "-": "Outcome of taking {b} from {a}:", "*": "Outcome of {a} multiplied {b} times:"}),
    "arith-homework": lambda r: arith_mixed(r, {
        "+": "My homework asks for {a} + {b}. What number should I write down?",
        "-": "My homework asks for {a} - {b}. What number should I write down?",
        "*": "My homework asks for {a} × {b}. What number should I write down?"}),
}

# ---- json: people with the task's keys (some families ask for other key sets), and other records.

FIRST = "Ines Mateo Priya Lukas Zara Tomasz Keiko Diego Amina Felix Sara Kofi Mira Oskar Leila Hugo Nadia Ivan Rosa Theo".split()
LAST = "Alvarez Novak Mensah Haddad Lindqvist Moreau Tanaka Okonkwo Petrova Silva Brandt Costa Ferrari Yilmaz Horvat Ncube".split()
CITY = "Bergen Porto Kyoto Nairobi Quito Krakow Tunis Hanoi Valencia Adelaide Calgary Cusco Tbilisi Bruges Medan Leeds".split()
JOB = "baker nurse pilot engineer florist chemist carpenter translator dentist librarian".split()
BOOK = ["The Silent Harbor", "Winter Orchard", "A Map of Salt", "The Glass Meridian", "Paper Lanterns", "North of Nowhere",
        "The Clockmaker's Daughter", "Seven Small Rivers", "Ashes and Amber", "The Last Cartographer"]
SENTENCES = [
    "{name} ({age}) recently settled in {city}, where they work as a {job}.",
    "Born {age} years ago, {name} now makes a living as a {job} in {city}.",
    "Our {job}, {name}, turned {age} this spring and commutes around {city}.",
    "{city} is home to {name}, a {job} who is {age}.",
]


def person(r):
    p = {"name": f"{r.choice(FIRST)} {r.choice(LAST)}", "age": r.randint(19, 88), "city": r.choice(CITY), "job": r.choice(JOB)}
    return p, r.choice(SENTENCES).format(**p)


def json_answer(obj):
    return json.dumps(obj)


def json_people(template, keys):
    def make(r):
        p, sentence = person(r)
        return template.format(text=sentence), json_answer({k: p[k] for k in keys})
    return make


def json_books(r):
    title, year = r.choice(BOOK), r.randint(1950, 2023)
    return (f"Put the book title and publication year into JSON (keys title, year): {title} first came out in {year}.",
            json_answer({"title": title, "year": year}))


JSON = {
    # fit
    "json-pull-out": json_people("Pull the person's name, age and city out of this note and format them as JSON: {text}",
                                 ["name", "age", "city"]),
    "json-name-age": json_people("Record this as JSON with fields name and age only: {text}", ["name", "age"]),
    "json-plus-job": json_people("Create JSON holding name, age, city and job from: {text}", ["name", "age", "city", "job"]),
    # held-out
    "json-name-city": json_people("Make a JSON object containing just name and city: {text}", ["name", "city"]),
    "json-after": json_people("{text} Store that person's name, age and city in a JSON object.", ["name", "age", "city"]),
    "json-books": json_books,
}

# ---- sentiment: new review sentences.

PRODUCTS = "kettle backpack keyboard tent blender jacket monitor toaster scooter speaker mattress umbrella".split()
POSITIVE = ["the {p} has held up beautifully for a whole year", "I keep recommending this {p} to my friends",
            "honestly the best {p} I have ever owned", "the {p} does exactly what I needed, no complaints",
            "for the price this {p} is a steal", "my {p} still feels brand new after months of use"]
NEGATIVE = ["the {p} stopped working on the second day", "I regret ordering this {p}, it is junk",
            "customer service refused to replace my broken {p}", "the {p} is much smaller and flimsier than advertised",
            "after one week the {p} started making a grinding noise", "returning this {p}, total letdown"]


def sentiment(template):
    def make(r):
        label = r.choice(["positive", "negative"])
        review = r.choice(POSITIVE if label == "positive" else NEGATIVE).format(p=r.choice(PRODUCTS))
        review = review[0].upper() + review[1:] + "."
        return template.format(review=review), label
    return make


SENTIMENT = {
    # fit
    "sentiment-buyer-wrote": sentiment("Here's what a buyer wrote: \"{review}\" Answer positive or negative."),
    "sentiment-pleased": sentiment("{review} Was the writer pleased or displeased? Reply with positive or negative."),
    "sentiment-feedback-colon": sentiment("Customer feedback: {review}\nSentiment (positive or negative):"),
    # held-out
    "sentiment-opinion": sentiment("Does the following comment express a positive or negative opinion? {review}"),
    "sentiment-verdict": sentiment("One-word verdict, positive or negative, for this comment: {review}"),
    "sentiment-shopper": sentiment("A shopper says: \"{review}\" Is that positive or negative sentiment?"),
}

# ---- spell: 0–9999 in words.


def spell(template):
    def make(r):
        n = r.choice([r.randint(0, 99), r.randint(100, 999), r.randint(1000, 9999), r.randint(1000, 9999)])
        return template.format(n=n), words(n)
    return make


SPELL = {
    # fit
    "spell-full-words": spell("Type the number {n} out in full words."),
    "spell-said": spell("How would {n} be said in English? Give it in words."),
    "spell-word-form": spell("Please give {n} in word form."),
    # held-out
    "spell-words-for": spell("What are the words for the number {n}?"),
    "spell-arrow": spell("{n} → English words"),
    "spell-digits": spell("Turn the digits {n} into English words."),
}

TASKS = {"arith": ARITH, "json": JSON, "sentiment": SENTIMENT, "spell": SPELL}
# Fixed wording of each family that must occur in no existing prompt (so the family is new).
SIGNATURES = {
    "arith-coins": "coins and", "arith-equals-what": "equals what", "arith-increase": "Give only the result",
    "arith-quick-maths": "Quick maths", "arith-outcome-colon": "Outcome of", "arith-homework": "My homework",
    "json-pull-out": "out of this note", "json-name-age": "fields name and age only", "json-plus-job": "and job from",
    "json-name-city": "containing just", "json-after": "Store that person", "json-books": "publication year",
    "sentiment-buyer-wrote": "what a buyer wrote", "sentiment-pleased": "pleased or displeased",
    "sentiment-feedback-colon": "Customer feedback:", "sentiment-opinion": "negative opinion",
    "sentiment-verdict": "One-word verdict", "sentiment-shopper": "A shopper says",
    "spell-full-words": "in full words", "spell-said": "be said in English", "spell-word-form": "in word form",
    "spell-words-for": "the words for the number", "spell-arrow": "→ English words", "spell-digits": "Turn the digits",
}


def existing_prompts():
    paths = glob.glob(os.path.join(ROOT, "prompts", "*.jsonl")) + glob.glob(os.path.join(ROOT, "..", "shared", "tasks", "*.jsonl"))
    seen = set()
    for path in sorted(set(os.path.realpath(p) for p in paths)):
        with open(path) as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    seen.add((row.get("prompt") or row.get("text")).lower())
    return seen


def check_new(seen):
    for family, sig in SIGNATURES.items():
        hits = [p for p in seen if sig.lower() in p]
        if hits:
            raise SystemExit(f"{family}: its wording '{sig}' already occurs, e.g. {hits[0]!r}")
    if not seen:
        raise SystemExit("found no existing prompts to check against (run from the repository, ../shared/tasks present)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only check that every family's wording is new")
    ap.add_argument("--out", default=os.path.join(ROOT, "prompts", "families"))
    args = ap.parse_args()
    seen = existing_prompts()
    check_new(seen)
    print(f"checked {len(SIGNATURES)} family wordings against {len(seen)} existing prompts: all new")
    if args.check:
        return
    os.makedirs(args.out, exist_ok=True)
    for split in ("fit", "held-out"):
        r = random.Random(f"braid-families-{split}")
        lines = []
        for task, families in TASKS.items():
            names = list(families)
            for family in (names[:3] if split == "fit" else names[3:]):
                made = set()
                while len(made) < PER_FAMILY[split]:
                    prompt, answer = families[family](r)
                    if prompt.lower() in seen or prompt in made:
                        continue
                    made.add(prompt)
                    lines.append({"id": f"{family}-{len(made)}", "task": task, "family": family, "prompt": prompt, "answer": answer})
        path = os.path.join(args.out, f"{split}.jsonl")
        with open(path, "w") as f:
            for line in lines:
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
        print(f"{path}: {len(lines)} prompts")


if __name__ == "__main__":
    main()
