// libFuzzer's driver for ARK's fuzz targets. SwiftPM links an executable target's main to
// <Target>_main, so each target's entry point calls ark_fuzz_main instead of linking
// libFuzzer's own main.
#include <stddef.h>
#include <stdint.h>

typedef int (*ark_fuzz_callback)(const uint8_t *data, size_t size);

// Runs libFuzzer with the process's arguments on `callback`.
int ark_fuzz_main(int argc, char **argv, ark_fuzz_callback callback);
