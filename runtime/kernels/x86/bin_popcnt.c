/* The scalar body compiled with -mpopcnt (per-file flag, runtime/CMakeLists.txt):
 * x86-64's baseline has no POPCNT instruction. Only called after kernels.c
 * checked __builtin_cpu_supports("popcnt"). */
#include <stdint.h>

#define EB_ISA(name) eb_popcnt_##name
#define EB_VL 1
#define EB_OB 1
#define EB_P 1
typedef uint64_t eb_vd;
typedef uint64_t eb_va;
#define EB_VA_ZERO() ((uint64_t)0)
#define EB_VD_LOAD(p) (*(p))
#define EB_VD_BCAST(u) ((uint64_t)(u))
#define EB_VA_XOR(a, x, w) ((a) + (uint64_t)EB_ISA(pc64)((x) ^ (w)))
#define EB_VA_AND(a, x, w) ((a) + (uint64_t)EB_ISA(pc64)((x) & (w)))
#define EB_VA_FLUSH(a, dst) ((dst)[0] += (uint32_t)(a))
#define EB_VA_GT(a, lim) ((unsigned)((int64_t)(a) > (int64_t)(lim))) /* lane > lim (signed): 1 bit per lane */
#define EB_MAX_STEPS ((size_t)1 << 24)

#include "portable/bin_impl.h"
