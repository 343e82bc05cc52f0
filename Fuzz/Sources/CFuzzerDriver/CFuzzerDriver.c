#include "CFuzzerDriver.h"

// Provided by libFuzzer, which -sanitize=fuzzer links.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

int ark_fuzz_main(int argc, char **argv, ark_fuzz_callback callback) {
    return LLVMFuzzerRunDriver(&argc, &argv, callback);
}
