# braid — the two entry points of the README: `make demo` and `make test`.
BRAID = .build/release/braid

.PHONY: setup build demo test bench

setup:
	bash scripts/setup.sh

build: setup
	swift build -c release

demo: build
	$(BRAID) generate --task arith -p "What is 345 minus 178?"
	$(BRAID) generate --task json -p "Extract the name, age and city as JSON: Meet Noah Okafor: 53 years old, a plumber from Lisbon."
	$(BRAID) generate -p "What is 12 + 35? Explain briefly." -n 64

test: build
	swift test -c release

bench: build
	$(BRAID) bench
