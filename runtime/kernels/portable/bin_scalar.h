/* The scalar lane of the shared binary body (bin_impl.h): one 64-bit word per lane, popcount
 * through the compiler builtin. Included by bin_scalar.c (target's default flags) and by
 * x86/bin_popcnt.c (the same code built with -mpopcnt); each defines EB_ISA first. */
#ifndef EDGEBNN_BIN_SCALAR_H
#define EDGEBNN_BIN_SCALAR_H
#include <stdint.h>

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

#include "portable/bin_impl.h"
#endif
