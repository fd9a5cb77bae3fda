# braid — the two entry points of the README: `make demo` and `make test`.
BRAID = .build/release/braid

.PHONY: setup build demo test bench

setup:
	bash scripts/setup.sh

build: setup
	swift build -c release

demo: build
	printf 'What is 9 times 9?\nExtract the name, age and city as JSON: Meet Noah Okafor: 53 years old, a plumber from Lisbon.\nHow do you write 470 in English words?\nWhat is the capital of France?\n' | $(BRAID) chat --temp 0 -n 48

# One release build serves the tests and the server tests (a separate `swift build` would compile everything twice).
test:
	bash scripts/setup.sh --test-tools
	swift build -c release --build-tests
	swift test -c release --skip-build
	bash scripts/test-serve.sh

bench: build
	$(BRAID) bench
