// libFuzzer's driver, called from each target's entry point: SwiftPM links an executable
// target's main to <Target>_main, so the targets call the driver themselves instead of
// linking libFuzzer's own main.
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
