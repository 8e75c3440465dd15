#include <stddef.h>
#include <stdint.h>
/* libFuzzer's entry for programs that have their own main (SwiftPM executables do). */
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));

/* Runs libFuzzer with the program's arguments and the test callback: the whole body of each
   target's entry (SwiftPM names it <Target>_main). */
static inline int tripline_fuzz_run(int argc, char **argv, int (*cb)(const uint8_t *Data, size_t Size)) {
    return LLVMFuzzerRunDriver(&argc, &argv, cb);
}
