// braid-fuzz: libFuzzer targets for the Braid library's readers (README: Fuzzing; scripts/fuzz.sh).
import BraidFuzzKit

FuzzMain.run(Targets.all)
