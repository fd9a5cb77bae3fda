#!/usr/bin/env bash
# Rebuilds the shipped task vectors models/TASK.tv.gguf from ../shared/models/deltas: 1-bit signs
# with per-row scales fitted on 256 dev examples of each task (arith also keeps ffn_down as Q4_0;
# json, sentiment and spell keep the 80 % of rows that matter most),
# the router fitted over them, and each vector's learned interweaving gate (models/TASK.gate.gguf).
# Needs a release build and the base.
set -euo pipefail
cd "$(dirname "$0")/.."
B=.build/release/braid
DELTAS=${DELTAS:-../shared/models/deltas}
# Per task, measured (BENCHMARKS.md): arith keeps ffn_down as a Q4_0 delta (1-bit alone loses ~7 points there).
# json, sentiment and spell keep 80 % of their rows (spell 97.0 → 96.7, the others unchanged), which
# brings them under 1/6 of the base's bytes; arith keeps every row (it is at its bar already).
declare -A POLICY=([arith]="--dense ffn_down" [json]="--row-density 0.8" [sentiment]="--row-density 0.8" [spell]="--row-density 0.8")
declare -A DESC=(
  [arith]="Arithmetic: add or subtract 3-digit numbers, multiply a 2-digit number by a 1-digit one; answer with the number."
  [json]="Extract the name, age and city from a sentence as a JSON object."
  [sentiment]="Classify a product review as positive or negative."
  [spell]="Write a number from 0 to 9999 in English words."
)
for t in arith json sentiment spell; do
  $B compress --delta "$DELTAS/$t.delta.Q4_0.gguf" --task "$t" --description "${DESC[$t]}" ${POLICY[$t]} \
     --fit-scales --calibration "../shared/tasks/$t.dev.jsonl" --calibration-count 256 -o "models/$t.tv.gguf" -q
done
# The router (fitted on the dev splits, general prompts and prompts/router-train.jsonl; a 4-block early
# stage whose confident answers stand, then the 10-block router) goes into every vector.
$B router fit --task-dir models --feature-layers 10 --early-layers 4 --early-confidence 0.999 -q
# Gates name the vector's weights (not its metadata), so a later router fit keeps them valid.
$B train-gate --task arith --examples 512 -q
for t in json sentiment spell; do $B train-gate --task "$t" --examples 256 -q; done
python3 - <<'PY'
import hashlib, json, os, struct
rows = []
for t in ["arith", "json", "sentiment", "spell"]:
    path = f"models/{t}.tv.gguf"
    src = f"{os.environ.get('DELTAS', '../shared/models/deltas')}/{t}.delta.Q4_0.gguf"
    meta = {}
    with open(path, "rb") as f:
        b = f.read()
    # read the string metadata of braid's header
    o = 24; n_kv = struct.unpack_from("<Q", b, 16)[0]
    for _ in range(n_kv):
        kl = struct.unpack_from("<Q", b, o)[0]; o += 8; k = b[o:o+kl].decode(); o += kl
        ty = struct.unpack_from("<I", b, o)[0]; o += 4
        if ty == 8:
            vl = struct.unpack_from("<Q", b, o)[0]; o += 8; meta[k] = b[o:o+vl].decode(); o += vl
        elif ty in (4, 5, 6): meta[k] = struct.unpack_from("<I", b, o)[0]; o += 4
        else: break
    rows.append({"task": t, "file": os.path.basename(path), "description": meta.get("braid.task_vector.description", ""),
                 "fidelity": meta.get("braid.task_vector.fidelity", ""),
                 "source": os.path.basename(src), "source_sha256": hashlib.sha256(open(src, "rb").read()).hexdigest(),
                 "base_sha256": meta.get("braid.task_vector.base_sha256", ""), "bytes": os.path.getsize(path),
                 "sha256": hashlib.sha256(b).hexdigest()})
gates = [{"task": t, "file": f"{t}.gate.gguf", "bytes": os.path.getsize(f"models/{t}.gate.gguf"),
          "sha256": hashlib.sha256(open(f"models/{t}.gate.gguf", "rb").read()).hexdigest()}
         for t in ["arith", "json", "sentiment", "spell"] if os.path.exists(f"models/{t}.gate.gguf")]
json.dump({"format_version": 3, "task_vectors": rows, "interweaving_gates": gates}, open("models/manifest.json", "w"), indent=2)
print(json.dumps(rows, indent=1))
PY
