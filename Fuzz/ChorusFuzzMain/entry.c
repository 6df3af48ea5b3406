// The entry point of chorus-fuzz: hands the command line to libFuzzer's driver.
//
// SwiftPM links an executable's entry point under the name `<Module>_main` (so that tests can
// link executables), which would hide libFuzzer's own `main`; libFuzzer's documented
// `LLVMFuzzerRunDriver` runs the same driver from here instead.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);  // Fuzz/ChorusFuzz/ChorusFuzz.swift

int ChorusFuzz_main(int argc, char **argv) {
    return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput);
}
