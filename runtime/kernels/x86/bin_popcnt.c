/* The scalar body compiled with -mpopcnt (per-file flag, runtime/CMakeLists.txt):
 * x86-64's baseline has no POPCNT instruction. Only called after kernels.c
 * checked __builtin_cpu_supports("popcnt"). */
#define EB_ISA(name) eb_popcnt_##name
#include "portable/bin_scalar.h"
