/* The AVX-512 pieces of the binary body that do not count bits: flush, compares,
 * packing and the float output stage in registers, shared by bin_avx512.c (VPOPCNTDQ)
 * and bin_avx512bw.c (nibble lookup). Each includes it with its own flags; everything
 * here needs AVX-512F/BW/VL/DQ only. Defines EB_VA_FLUSH, EB_VA_GT, EB_MAX_STEPS,
 * EB_PACK64, EB_BITS64, EB_F32_EPI(2) and EB_FMAX64 for portable/bin_impl.h. */
#ifndef EDGEBNN_BIN_AVX512_STAGE_H
#define EDGEBNN_BIN_AVX512_STAGE_H
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "kernels.h" /* EB_POST_* for the float stage below */

static inline void eb_zmm_flush(__m512i a, uint32_t *dst) {
  const __m256i c = _mm512_cvtepi64_epi32(a);
  _mm256_storeu_si256((__m256i *)dst, _mm256_add_epi32(c, _mm256_loadu_si256((const __m256i *)dst)));
}

static inline uint64_t eb_zmm_pack64(const float *x, const float *thr) {
  uint64_t w = 0;
  for (int i = 0; i < 4; i++) {
    const __m512 t = thr ? _mm512_loadu_ps(thr + 16 * i) : _mm512_setzero_ps();
    w |= (uint64_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(x + 16 * i), t, _CMP_LT_OQ) << (16 * i);
  }
  return w;
}

static inline uint64_t eb_zmm_bits64(const int32_t *a, const int32_t *t, const int32_t *d) {
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

/* clampf of bin_impl.h/ref, lane by lane: lo where v < lo, else hi where v > hi (NaN kept) */
static inline __m256 eb_zmm_clamp8(__m256 v, float lo, float hi) {
  if (lo == -INFINITY && hi == INFINITY) return v; /* no bound can bite, NaN included: skip */
  const __m256 l = _mm256_set1_ps(lo), h = _mm256_set1_ps(hi);
  const __mmask8 below = _mm256_cmp_ps_mask(v, l, _CMP_LT_OQ), above = _mm256_cmp_ps_mask(v, h, _CMP_GT_OQ);
  return _mm256_mask_blend_ps(below, _mm256_mask_blend_ps(above, v, h), l);
}

/* Float output stage of 8 channels from their 64-bit mismatch counts (EB_F32_EPI):
 * acc = full - 2*cnt - corr, then m*acc + b, clamp, the post stages (kernels.h), + res, clamp, each a separate
 * IEEE operation as in ref (ISO C mode: no contraction into FMA). Lanes >= n are
 * neither loaded nor stored. Returns bit c set where the value < t[c]. */
static inline __attribute__((always_inline)) uint32_t eb_zmm_f32epi(__m512i a, int32_t full, const int32_t *corr,
                                                                     const float *m, const float *b, const float *t,
                                                                     float lo, float hi, int post, float clo,
                                                                     float chi, const float *s2, const float *b2,
                                                                     float alo, float ahi, const float *res, float rlo,
                                                                     float rhi, float *y, int n) {
  if (n <= 0) return 0;
  const __mmask8 k = n >= 8 ? (__mmask8)0xff : (__mmask8)((1u << n) - 1u);
  const __m256i cnt = _mm512_cvtepi64_epi32(a);
  const __m256i acc = _mm256_sub_epi32(_mm256_sub_epi32(_mm256_set1_epi32(full), _mm256_add_epi32(cnt, cnt)),
                                       _mm256_loadu_si256((const __m256i *)corr));
  __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m), _mm256_cvtepi32_ps(acc)), _mm256_loadu_ps(b));
  v = eb_zmm_clamp8(v, lo, hi);
  if (post & EB_POST_CLAMP) v = eb_zmm_clamp8(v, clo, chi);
  if (post & EB_POST_AFFINE)
    v = eb_zmm_clamp8(_mm256_add_ps(_mm256_mul_ps(v, _mm256_loadu_ps(s2)), _mm256_loadu_ps(b2)), alo, ahi);
  if (res) v = eb_zmm_clamp8(_mm256_add_ps(v, _mm256_maskz_loadu_ps(k, res)), rlo, rhi);
  _mm256_mask_storeu_ps(y, k, v);
  return (uint32_t)_mm256_mask_cmp_ps_mask(k, v, _mm256_loadu_ps(t), _CMP_LT_OQ);
}

/* The same stage on two accumulators at once (EB_F32_EPI2): 16 channels in one zmm of floats,
 * half the float instructions. */
static inline __m512 eb_zmm_clamp16(__m512 v, float lo, float hi) {
  if (lo == -INFINITY && hi == INFINITY) return v;
  const __m512 l = _mm512_set1_ps(lo), h = _mm512_set1_ps(hi);
  const __mmask16 below = _mm512_cmp_ps_mask(v, l, _CMP_LT_OQ), above = _mm512_cmp_ps_mask(v, h, _CMP_GT_OQ);
  return _mm512_mask_blend_ps(below, _mm512_mask_blend_ps(above, v, h), l);
}

static inline __attribute__((always_inline)) uint32_t eb_zmm_f32epi2(__m512i a0, __m512i a1, int32_t full,
                                                                      const int32_t *corr, const float *m,
                                                                      const float *b, const float *t, float lo,
                                                                      float hi, int post, float clo, float chi,
                                                                      const float *s2, const float *b2, float alo,
                                                                      float ahi, const float *res, float rlo,
                                                                      float rhi, float *y, int n) {
  if (n <= 0) return 0;
  const __mmask16 k = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
  const __m512i cnt = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(a0)), _mm512_cvtepi64_epi32(a1), 1);
  const __m512i acc = _mm512_sub_epi32(_mm512_sub_epi32(_mm512_set1_epi32(full), _mm512_add_epi32(cnt, cnt)),
                                       _mm512_loadu_si512(corr));
  __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(m), _mm512_cvtepi32_ps(acc)), _mm512_loadu_ps(b));
  v = eb_zmm_clamp16(v, lo, hi);
  if (post & EB_POST_CLAMP) v = eb_zmm_clamp16(v, clo, chi);
  if (post & EB_POST_AFFINE)
    v = eb_zmm_clamp16(_mm512_add_ps(_mm512_mul_ps(v, _mm512_loadu_ps(s2)), _mm512_loadu_ps(b2)), alo, ahi);
  if (res) v = eb_zmm_clamp16(_mm512_add_ps(v, _mm512_maskz_loadu_ps(k, res)), rlo, rhi);
  _mm512_mask_storeu_ps(y, k, v);
  return (uint32_t)_mm512_mask_cmp_ps_mask(k, v, _mm512_loadu_ps(t), _CMP_LT_OQ);
}

#define EB_VA_FLUSH(a, dst) eb_zmm_flush((a), (dst))
#define EB_VA_GT(a, lim) ((unsigned)_mm512_cmpgt_epi64_mask((a), (lim)))
#define EB_MAX_STEPS ((size_t)1 << 24)
#define EB_PACK64(x, thr) eb_zmm_pack64((x), (thr))
/* offsets past `on` are formed only when n > 0 inside */
#define EB_F32_EPI2(a0, a1, e, p, j)                                                                           \
  eb_zmm_f32epi2((a0), (a1), (e)->full, (e)->corr[p] + (j) * 8, (e)->m + (j) * 8, (e)->b + (j) * 8,             \
                    (e)->t + (j) * 8, (e)->lo, (e)->hi, (e)->post, (e)->clo, (e)->chi, (e)->s2 + (j) * 8,          \
                    (e)->b2 + (j) * 8, (e)->alo, (e)->ahi,                                                         \
                    (e)->res[p] && (e)->on > (j) * 8 ? (e)->res[p] + (j) * 8 : NULL, (e)->rlo, (e)->rhi,           \
                    (e)->on > (j) * 8 ? (e)->y[p] + (j) * 8 : (e)->y[p], (e)->on - (j) * 8)
#define EB_F32_EPI(a, e, p, j)                                                                                 \
  eb_zmm_f32epi((a), (e)->full, (e)->corr[p] + (j) * 8, (e)->m + (j) * 8, (e)->b + (j) * 8, (e)->t + (j) * 8, \
                   (e)->lo, (e)->hi, (e)->post, (e)->clo, (e)->chi, (e)->s2 + (j) * 8, (e)->b2 + (j) * 8,          \
                   (e)->alo, (e)->ahi, (e)->res[p] && (e)->on > (j) * 8 ? (e)->res[p] + (j) * 8 : NULL, (e)->rlo,   \
                   (e)->rhi, (e)->on > (j) * 8 ? (e)->y[p] + (j) * 8 : (e)->y[p], (e)->on - (j) * 8)
#define EB_BITS64(a, t, d) eb_zmm_bits64((a), (t), (d))

/* 64 channels of a float max pool window in four registers: max_ps(v, m) is v > m ? v : m,
 * NaN operands included, the expression of eb_ref_maxpool_f32. */
static inline void eb_zmm_fmax64(const float *const *taps, int nt, size_t c0, float *y) {
  __m512 m[4];
  for (int j = 0; j < 4; j++) m[j] = _mm512_loadu_ps(taps[0] + c0 + 16 * j);
  for (int t = 1; t < nt; t++)
    for (int j = 0; j < 4; j++) m[j] = _mm512_max_ps(_mm512_loadu_ps(taps[t] + c0 + 16 * j), m[j]);
  for (int j = 0; j < 4; j++) _mm512_storeu_ps(y + 16 * j, m[j]);
}
#define EB_FMAX64(taps, nt, c0, y) eb_zmm_fmax64((taps), (nt), (c0), (y))

#endif
