/* AVX-512 binary kernels with VPOPCNTDQ (Ice Lake and later, Zen 4): one
 * vpxorq + vpopcntq + vpaddq per 8 words. Flags for this file only
 * (-mavx512f -mavx512vpopcntdq -mavx512bw ...); kernels.c checks the CPU. */
#include <immintrin.h>
#include <stdint.h>

#include "x86/bin_avx512_stage.h"

#define EB_ISA(name) eb_avx512_##name
#define EB_VL 8
#define EB_OB 4
#define EB_P 6
typedef __m512i eb_vd;
typedef __m512i eb_va;

#define EB_VA_ZERO() _mm512_setzero_si512()
#define EB_VD_LOAD(p) _mm512_loadu_si512((const void *)(p))
#define EB_VD_BCAST(u) _mm512_set1_epi64((long long)(u))
#define EB_VA_XOR(a, x, w) _mm512_add_epi64((a), _mm512_popcnt_epi64(_mm512_xor_si512((x), (w))))
#define EB_VA_AND(a, x, w) _mm512_add_epi64((a), _mm512_popcnt_epi64(_mm512_and_si512((x), (w))))

#include "portable/bin_impl.h"
