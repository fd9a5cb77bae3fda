#!/usr/bin/env bash
# Property-based tests of a live `braid serve` against docs/openapi.yaml with schemathesis.
#
#   scripts/schemathesis.sh [BASE_URL]      (default http://127.0.0.1:8080)
#
# Checks: no 5xx (not_a_server_error), response bodies match their schemas
# (response_schema_conformance), and documented status codes, content types and headers.
# Exits non-zero on any failure.
#
# Environment:
#   BRAID_API_KEY     sent as "Authorization: Bearer KEY" (when the server runs with --api-key)
#   BRAID_ADMIN_KEY   when set, POST /admin/reload is tested with it; otherwise it is skipped
#   MAX_EXAMPLES      test cases per operation (default 30)
#   WORKERS           concurrent schemathesis workers (default 1: several threads can trip a
#                     CPython 3.11 ast.parse race inside hypothesis, "AST constructor recursion depth mismatch")
#   SCHEMATHESIS      the schemathesis executable (default: .venv-api/bin/schemathesis, else PATH)
#   SCHEMATHESIS_ARGS extra arguments for `schemathesis run` (e.g. "--seed 1 --phases fuzzing")
#
# Generation is kept short: a hook caps max_tokens/max_completion_tokens of generated requests
# that the server would accept at 8 (and sets 8 where chat leaves it out), so each case decodes
# at most a few tokens; values the server must reject (< 1, over the context, wrong types) are
# left as generated.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
url="${1:-http://127.0.0.1:8080}"
url="${url%/}"
max_examples="${MAX_EXAMPLES:-30}"
workers="${WORKERS:-1}"

st="${SCHEMATHESIS:-}"
if [[ -z "$st" ]]; then
    if [[ -x "$root/.venv-api/bin/schemathesis" ]]; then st="$root/.venv-api/bin/schemathesis"; else st="schemathesis"; fi
fi
command -v "$st" >/dev/null || { echo "schemathesis not found: python3 -m venv .venv-api && .venv-api/bin/pip install -r Tests/python/requirements.txt" >&2; exit 2; }

if ! curl -fsS --max-time 5 "$url/health" >/dev/null; then
    echo "no ready braid server at $url (GET /health is not 200)" >&2
    exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cat >"$work/braid_hooks.py" <<'EOF'
import os

import schemathesis

CAP = 8
API_KEY = os.environ.get("BRAID_API_KEY")
ADMIN_KEY = os.environ.get("BRAID_ADMIN_KEY")


def _cap(body, key):
    value = body.get(key)
    # Only values the server would run (1 ≤ v ≤ a context, 300.0 included) are capped: invalid
    # ones stay invalid.
    if isinstance(value, (int, float)) and not isinstance(value, bool) and CAP < value <= 1 << 16:
        body[key] = CAP


@schemathesis.hook
def map_case(context, case):
    path = case.operation.path
    if path in ("/v1/chat/completions", "/v1/completions") and isinstance(case.body, dict):
        body = case.body
        _cap(body, "max_tokens")
        _cap(body, "max_completion_tokens")
        if path == "/v1/chat/completions" and "max_tokens" not in body and "max_completion_tokens" not in body:
            body["max_tokens"] = CAP
    # The admin endpoint takes the admin key, the others the API key (a global --header would
    # override one of them).
    key = ADMIN_KEY if path == "/admin/reload" else API_KEY
    if key:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}
    return case
EOF

args=(
    run "$root/docs/openapi.yaml"
    --url "$url"
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance
    --max-examples "$max_examples"
    --workers "$workers"
    --request-timeout 120
    --generation-database none
    --suppress-health-check too_slow,filter_too_much
    --no-color
)
if [[ -z "${BRAID_ADMIN_KEY:-}" ]]; then
    args+=(--exclude-path /admin/reload)
fi
# shellcheck disable=SC2206
args+=(${SCHEMATHESIS_ARGS:-})

cd "$work"
rc=0
export BRAID_API_KEY="${BRAID_API_KEY:-}" BRAID_ADMIN_KEY="${BRAID_ADMIN_KEY:-}"
PYTHONPATH="$work${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=braid_hooks "$st" "${args[@]}" || rc=$?
exit "$rc"
