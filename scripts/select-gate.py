#!/usr/bin/env python3
"""Selects the guarded interweaving gate's rule (issue 18) on teacher-forced evidence rows from
`braid gate-evidence` (one row per answer token: the router's probability r of the route, both
streams' top token, top and runner-up probabilities, and which output has the target on top:
[tuned, base, mix 0.25, mix 0.5, mix 0.75], the mix weight being the base's).

Greedy decoding writes an answer exactly when each of its tokens is on top, so a rule's accuracy
on a prompt is the AND of its choices' hits. Outside the tasks the target is the base's own
answer, so the same AND is "the base's answer kept". For each rule of the grid it prints accuracy
per task and family, the share of general prompts whose base answer survives, and the LM head
columns it needs per token (the favoured stream's head first, the other's only when asked for,
a mix's when chosen).

    python3 scripts/select-gate.py ROWS.jsonl [ROWS2.jsonl ...] [--top 15]
"""
import argparse
import collections
import itertools
import json

CANDIDATES = {"tuned": 0, "base": 1, "mix0.25": 2, "mix0.5": 3, "mix0.75": 4}


def load(paths):
    cases = collections.OrderedDict()
    for path in paths:
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                cases.setdefault((path, row["case"]), []).append(row)
    return list(cases.values())


def decide(rule, row):
    """(candidate, LM head columns) of the guarded rule at one position."""
    sure, tuned_sure, on_disagree, base_sure, on_base_sure = rule
    r, t, b = row["r"], row["t"], row["b"]
    if r < 0.5:
        return "base", 1  # outside (the router's best guess is another task or none): the base writes
    if r >= sure and t[1] >= tuned_sure:
        return "tuned", 1
    if t[0] == b[0]:
        return "tuned", 2
    if b[1] >= base_sure:
        return on_base_sure, 2 if on_base_sure == "base" else 3
    return on_disagree, 2 if on_disagree in ("tuned", "base") else 3


def score(rule, cases):
    right = collections.Counter()
    total = collections.Counter()
    heads = steps = 0
    for rows in cases:
        ok = True
        for row in rows:
            c, h = decide(rule, row)
            ok = ok and row["hits"][CANDIDATES[c]] == 1
            heads += h
            steps += 1
        key = row["family"]
        total[key] += 1
        right[key] += ok
    return {k: 100.0 * right[k] / total[k] for k in total}, heads / max(steps, 1)


def reference(cases, c):
    """Accuracy per family of one candidate everywhere (tuned = the vector alone, base = the base)."""
    right = collections.Counter()
    total = collections.Counter()
    for rows in cases:
        key = rows[0]["family"]
        total[key] += 1
        right[key] += all(row["hits"][CANDIDATES[c]] for row in rows)
    return {k: 100.0 * right[k] / total[k] for k in total}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rows", nargs="+")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    cases = load(args.rows)
    families = sorted({rows[0]["family"] for rows in cases})
    refs = {c: reference(cases, c) for c in CANDIDATES}
    best = {f: max(refs["tuned"][f], refs["base"][f]) for f in families}
    print("family".ljust(26) + "".join(c.rjust(9) for c in CANDIDATES))
    for f in families:
        print(f.ljust(26) + "".join(f"{refs[c][f]:9.1f}" for c in CANDIDATES))
    grid = itertools.product([0.5, 0.8, 0.9, 0.95, 0.99], [0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.01],
                             ["tuned", "base", "mix0.25", "mix0.5", "mix0.75"], [0.5, 0.7, 0.9, 1.01], ["base", "mix0.75"])
    results = []
    for rule in grid:
        acc, heads = score(rule, cases)
        # The bar: never more than 1 point under the better parent; rank by the worst shortfall, then the mean.
        shortfall = min(acc[f] - best[f] for f in families)
        results.append((shortfall, sum(acc.values()) / len(acc), -heads, rule, acc, heads))
    results.sort(key=lambda x: (x[0], x[1], x[2]), reverse=True)
    print()
    print("rule (router sure, tuned sure, on disagreement, base sure, then)".ljust(44) + "worst-vs-best  mean  heads  " + " ".join(f[:12].rjust(12) for f in families))
    for shortfall, mean, _, rule, acc, heads in results[:args.top]:
        print(str(rule).ljust(44) + f"{shortfall:13.1f} {mean:5.1f} {heads:6.2f}  " + " ".join(f"{acc[f]:12.1f}" for f in families))


if __name__ == "__main__":
    main()
