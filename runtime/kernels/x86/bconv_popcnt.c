/* The same fast binary conv/FC compiled with -mpopcnt (per-file flag, see
 * runtime/CMakeLists.txt): x86-64's baseline has no POPCNT, so the portable
 * build calls a bit-twiddling helper per word. Only called after
 * eb_kernels.c checked __builtin_cpu_supports("popcnt"). */
#define EB_FAST(name) eb_popcnt_##name
#include "portable/bconv_fast_impl.h"
