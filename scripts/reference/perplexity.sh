#!/usr/bin/env bash
# Reference perplexities from llama.cpp's llama-perplexity for the integration test
# (Tests/BraidIntegrationTests/PerplexityTests.swift): prompts/perplexity.txt on the base model,
# for each "CTX:CHUNKS" case, 2 threads. Writes Tests/BraidIntegrationTests/Fixtures/perplexity.json.
# Usage: scripts/reference/perplexity.sh [LLAMA_PERPLEXITY] [CASES...]   (default cases 512:4 128:16)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-../llama/build/bin/llama-perplexity}
shift || true
if [ $# -gt 0 ]; then cases=("$@"); else cases=(512:4 128:16); fi
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
file=prompts/perplexity.txt
out=Tests/BraidIntegrationTests/Fixtures/perplexity.json
mkdir -p "$(dirname "$out")"
version=$("$bin" --version 2>&1 | grep -m1 -o 'commit [0-9a-f]*' || echo 'commit unknown')
rows=()
for c in "${cases[@]}"; do
  ctx=${c%%:*}; chunks=${c##*:}
  log=$("$bin" -m "$model" -f "$file" -c "$ctx" --chunks "$chunks" -t 2 2>&1)
  line=$(grep -m1 'Final estimate: PPL' <<<"$log") || { echo "$log" >&2; exit 1; }
  ppl=$(sed -E 's/.*PPL = ([0-9.]+) \+\/- ([0-9.]+).*/\1/' <<<"$line")
  se=$(sed -E 's/.*PPL = ([0-9.]+) \+\/- ([0-9.]+).*/\2/' <<<"$line")
  echo "ctx $ctx chunks $chunks: PPL $ppl +/- $se" >&2
  rows+=("    {\"ctx\": $ctx, \"chunks\": $chunks, \"ppl\": $ppl, \"stderr\": $se}")
done
{
  echo "{"
  echo "  \"tool\": \"llama-perplexity ($version, llama-cpp-python 0.3.36's vendored llama.cpp), -t 2\","
  echo "  \"model\": \"$model\","
  echo "  \"model_sha256\": \"$(sha256sum "$model" | cut -d' ' -f1)\","
  echo "  \"file\": \"$file\","
  echo "  \"file_sha256\": \"$(sha256sum "$file" | cut -d' ' -f1)\","
  echo "  \"cases\": ["
  (IFS=$'\n'; echo "${rows[*]}" | sed '$!s/$/,/')
  echo "  ]"
  echo "}"
} > "$out"
echo "wrote $out" >&2
