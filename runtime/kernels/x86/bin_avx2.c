/* AVX2 binary kernels (-mavx2 -mpopcnt for this file only; kernels.c checks the
 * CPU first). AVX2 has no vector popcount: nibble lookup with vpshufb, counted in
 * bytes over up to EB_VB_STEPS words, then one vpsadbw sums the bytes of each
 * 64-bit lane (not one per word: vpsadbw and vpshufb share port 5 on Intel). */
#include <immintrin.h>
#include <stdint.h>

#define EB_ISA(name) eb_avx2_##name
#define EB_VL 4
/* 2 blocks (16 channels, 4 ymm) x 3 pixels: 12 byte counters; measured best of
 * 1..2 blocks x 2..5 pixels on Cascade Lake, ahead of the spill-free 1 x 4 */
#define EB_OB 2
#define EB_P 3
typedef __m256i eb_vd;
typedef __m256i eb_va;
typedef __m256i eb_vb;

/* b + the popcount of each byte of v, by a nibble lookup (at most 8 per byte) */
static inline __m256i eb_avx2_count(__m256i b, __m256i v) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2,
                                       2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low));
  const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
  return _mm256_add_epi8(_mm256_add_epi8(b, lo), hi);
}

static inline void eb_avx2_flush(__m256i a, uint32_t *dst) {
  uint64_t l[4];
  _mm256_storeu_si256((__m256i *)l, a);
  for (int i = 0; i < 4; i++) dst[i] += (uint32_t)l[i];
}

/* 64 floats -> one word, bit b set where x[b] < thr[b] (0 when thr is NULL). */
static inline uint64_t eb_avx2_pack64(const float *x, const float *thr) {
  uint64_t w = 0;
  for (int i = 0; i < 8; i++) {
    const __m256 t = thr ? _mm256_loadu_ps(thr + 8 * i) : _mm256_setzero_ps();
    const unsigned m = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + 8 * i), t, _CMP_LT_OQ));
    w |= (uint64_t)m << (8 * i);
  }
  return w;
}

static inline uint64_t eb_avx2_bits64(const int32_t *a, const int32_t *t, const int32_t *d) {
  uint64_t w = 0;
  const __m256i zero = _mm256_setzero_si256();
  for (int i = 0; i < 8; i++) {
    const __m256i av = _mm256_loadu_si256((const __m256i *)(a + 8 * i));
    const __m256i tv = _mm256_loadu_si256((const __m256i *)(t + 8 * i));
    const __m256i dv = _mm256_loadu_si256((const __m256i *)(d + 8 * i));
    const __m256i lt = _mm256_and_si256(_mm256_cmpgt_epi32(dv, zero), _mm256_cmpgt_epi32(tv, av));
    const __m256i gt = _mm256_and_si256(_mm256_cmpgt_epi32(zero, dv), _mm256_cmpgt_epi32(av, tv));
    const unsigned m = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_or_si256(lt, gt)));
    w |= (uint64_t)m << (8 * i);
  }
  return w;
}

#define EB_VA_ZERO() _mm256_setzero_si256()
#define EB_VD_LOAD(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define EB_VD_BCAST(u) _mm256_set1_epi64x((long long)(u))
#define EB_VB_STEPS 31 /* 31 * 8 = 248 < 256 */
#define EB_VB_ZERO() _mm256_setzero_si256()
#define EB_VD_HI(v) (v) /* no ternary logic op: shifting x ^ w costs the same as x and w apart */
#define EB_VB_XOR(b, x, xh, w, wh) ((void)(xh), (void)(wh), eb_avx2_count((b), _mm256_xor_si256((x), (w))))
#define EB_VB_AND(b, x, xh, w, wh) ((void)(xh), (void)(wh), eb_avx2_count((b), _mm256_and_si256((x), (w))))
#define EB_VA_ADDB(a, b) _mm256_add_epi64((a), _mm256_sad_epu8((b), _mm256_setzero_si256()))
#define EB_VA_FLUSH(a, dst) eb_avx2_flush((a), (dst))
#define EB_VA_GT(a, lim) ((unsigned)_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64((a), (lim)))))
#define EB_MAX_STEPS ((size_t)1 << 24)
#define EB_PACK64(x, thr) eb_avx2_pack64((x), (thr))
#define EB_BITS64(a, t, d) eb_avx2_bits64((a), (t), (d))

#include "portable/bin_impl.h"
