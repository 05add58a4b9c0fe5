/* Fast binary kernels on plain 64-bit integers, built with the target's default
 * flags: runs on any CPU (armv7 without NEON, x86-64 without POPCNT), and is the
 * scalar instantiation of the shared body. */
#include <stdint.h>

#define EB_ISA(name) eb_scalar_##name
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
#define EB_MAX_STEPS ((size_t)1 << 24) /* 2^24 words * 64 < 2^32: never reached by a valid op */

#include "bin_impl.h"
