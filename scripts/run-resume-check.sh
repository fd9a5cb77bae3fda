#!/usr/bin/env bash
# `braid run` loses nothing: a run killed with SIGKILL halfway through, then resumed with
# --resume, ends with every id exactly once and the same answers as an uninterrupted run.
# Usage: scripts/run-resume-check.sh [REPEATS] [extra braid run flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-50}; shift || true
braid=.build/release/braid
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
for _ in $(seq "$repeats"); do cat prompts/mixed-routes.jsonl; done > "$work/in.jsonl"
total=$(wc -l < "$work/in.jsonl")

"$braid" run -q -i "$work/in.jsonl" -o "$work/whole.jsonl" "$@"

"$braid" run -q -i "$work/in.jsonl" -o "$work/resumed.jsonl" "$@" &
pid=$!
while [ "$(wc -l < "$work/resumed.jsonl" 2>/dev/null || echo 0)" -lt $((total / 2)) ]; do sleep 0.2; done
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
echo "killed after $(wc -l < "$work/resumed.jsonl") of $total answers"
"$braid" run -q -i "$work/in.jsonl" -o "$work/resumed.jsonl" --resume "$@"

python3 - "$work/whole.jsonl" "$work/resumed.jsonl" "$total" <<'PY'
import json, sys
def load(p):
    rows = [json.loads(l) for l in open(p)]
    return rows, {r["id"]: (r.get("output"), r.get("route", {}).get("task"), r.get("error")) for r in rows}
whole, w = load(sys.argv[1]); resumed, r = load(sys.argv[2]); total = int(sys.argv[3])
ids = [x["id"] for x in resumed]
assert len(ids) == len(set(ids)) == total, f"{len(ids)} records, {len(set(ids))} distinct ids, {total} lines"
diff = [i for i in w if w[i] != r.get(i)]
assert not diff, f"{len(diff)} answers differ, e.g. {diff[:3]}"
print(f"resume check: {total} ids exactly once, every answer and route equal to the uninterrupted run")
PY
