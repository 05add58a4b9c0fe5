/* AVX-512 binary kernels with VPOPCNTDQ (Ice Lake and later, Zen 4): one
 * vpxorq + vpopcntq + vpaddq per 8 words. Flags for this file only
 * (-mavx512f -mavx512vpopcntdq -mavx512bw ...); kernels.c checks the CPU. */
#include <immintrin.h>
#include <stdint.h>

#define EB_ISA(name) eb_avx512_##name
#define EB_VL 8
#define EB_OB 4
#define EB_P 6
typedef __m512i eb_vd;
typedef __m512i eb_va;

static inline void eb_avx512_flush(__m512i a, uint32_t *dst) {
  const __m256i c = _mm512_cvtepi64_epi32(a);
  _mm256_storeu_si256((__m256i *)dst, _mm256_add_epi32(c, _mm256_loadu_si256((const __m256i *)dst)));
}

static inline uint64_t eb_avx512_pack64(const float *x, const float *thr) {
  uint64_t w = 0;
  for (int i = 0; i < 4; i++) {
    const __m512 t = thr ? _mm512_loadu_ps(thr + 16 * i) : _mm512_setzero_ps();
    w |= (uint64_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(x + 16 * i), t, _CMP_LT_OQ) << (16 * i);
  }
  return w;
}

static inline uint64_t eb_avx512_bits64(const int32_t *a, const int32_t *t, const int32_t *d) {
  uint64_t w = 0;
  const __m512i zero = _mm512_setzero_si512();
  for (int i = 0; i < 4; i++) {
    const __m512i av = _mm512_loadu_si512(a + 16 * i), tv = _mm512_loadu_si512(t + 16 * i);
    const __m512i dv = _mm512_loadu_si512(d + 16 * i);
    const __mmask16 m = (__mmask16)((_mm512_cmpgt_epi32_mask(dv, zero) & _mm512_cmplt_epi32_mask(av, tv)) |
                                    (_mm512_cmplt_epi32_mask(dv, zero) & _mm512_cmpgt_epi32_mask(av, tv)));
    w |= (uint64_t)m << (16 * i);
  }
  return w;
}

#define EB_VA_ZERO() _mm512_setzero_si512()
#define EB_VD_LOAD(p) _mm512_loadu_si512((const void *)(p))
#define EB_VD_BCAST(u) _mm512_set1_epi64((long long)(u))
#define EB_VA_XOR(a, x, w) _mm512_add_epi64((a), _mm512_popcnt_epi64(_mm512_xor_si512((x), (w))))
#define EB_VA_AND(a, x, w) _mm512_add_epi64((a), _mm512_popcnt_epi64(_mm512_and_si512((x), (w))))
#define EB_VA_FLUSH(a, dst) eb_avx512_flush((a), (dst))
#define EB_VA_GT(a, lim) ((unsigned)_mm512_cmpgt_epi64_mask((a), (lim)))
#define EB_MAX_STEPS ((size_t)1 << 24)
#define EB_PACK64(x, thr) eb_avx512_pack64((x), (thr))
#define EB_BITS64(a, t, d) eb_avx512_bits64((a), (t), (d))

#include "portable/bin_impl.h"
