# braid — the two entry points of the README: `make demo` and `make test`.
BRAID = .build/release/braid

.PHONY: setup build demo test bench fuzz fuzz-short

setup:
	bash scripts/setup.sh

build: setup
	swift build -c release

demo: build
	printf 'What is 9 times 9?\nExtract the name, age and city as JSON: Meet Noah Okafor: 53 years old, a plumber from Lisbon.\nHow do you write 470 in English words?\nWhat is the capital of France?\n' | $(BRAID) chat --temp 0 -n 48

# Extra flags for test's build. CI (.ci/run) sets -Xswiftc -warnings-as-errors, so a new compiler
# warning in braid's own code fails CI; SwiftPM leaves it off the dependencies (they are built
# with -suppress-warnings), and a developer's `make test` keeps building with a warning.
SWIFT_BUILD_FLAGS ?=

# One release build serves the tests and the server tests (a separate `swift build` would compile everything twice).
test:
	bash scripts/setup.sh --test-tools --model gemma3-270m
	swift build -c release --build-tests $(SWIFT_BUILD_FLAGS)
	swift test -c release --skip-build
	bash scripts/test-serve.sh
	$(MAKE) fuzz-short

# libFuzzer over every reader (README: Fuzzing), FUZZ_SECONDS each; fails on a crash, timeout or leak.
FUZZ_SECONDS ?= 600
fuzz: setup
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

# What `make test` runs (about 3 minutes): the Braid readers 15 s each, two at a time, built
# unoptimised (quicker to build), and braid serve's request decoder replayed over its corpus by
# the release build (its libFuzzer build links the HTTP stack: make fuzz).
fuzz-short:
	FUZZ_SECONDS=15 FUZZ_JOBS=2 FUZZ_CONFIG=debug bash scripts/fuzz.sh gguf taskvector router gate safetensors lora merge-yaml jsonl tokenizer
	.build/release/braid-fuzz-server --target=chat Fuzz/corpus/chat

bench: build
	$(BRAID) bench
