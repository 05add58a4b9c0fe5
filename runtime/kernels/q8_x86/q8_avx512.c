/*
 * AVX-512 int8 kernels: the GEMM on AVX512-VNNI (vpdpbusd: u8 activations + 128 times
 * s8 weights, 4 products per int32 lane), depthwise on vpdpwssd (16-bit pairs of
 * taps), add and quantize, all with TFLite's exact requantization in the one-shift
 * form of q8.h (TFLite's own form where a plan carries no table). Only this file gets
 * -mavx512*; q8.c calls it where the CPU reports VNNI.
 */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "q8/q8.h"

/* MultiplyByQuantizedMultiplier on 16 lanes, the same integers as q8_mbqm_ (q8.h):
 * the doubling high multiply as (a * q + 2^30) >> 31 in two sets of int64 lanes. */
static inline __m512i mbqm16(__m512i v, __m512i mult, __m512i lsh, __m512i rsh) {
  const __m512i half = _mm512_set1_epi64(INT64_C(1) << 30), one = _mm512_set1_epi32(1);
  v = _mm512_sllv_epi32(v, lsh); /* counts of 32 give 0, as the reference's wrapped shift */
  const __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(v, mult), half);
  const __m512i po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(v, 32), _mm512_srli_epi64(mult, 32)), half);
  /* bits 31..62 of each product: to the low dword (even lanes) or the high dword (odd) */
  const __m512i hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 31), _mm512_slli_epi64(po, 1));
  /* RoundingDivideByPOT */
  const __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, rsh), one);
  const __m512i rem = _mm512_and_si512(hi, mask);
  const __m512i thr = _mm512_sub_epi32(_mm512_srai_epi32(mask, 1), _mm512_srai_epi32(hi, 31));
  const __m512i res = _mm512_srav_epi32(hi, rsh);
  return _mm512_mask_add_epi32(res, _mm512_cmpgt_epi32_mask(rem, thr), res, one);
}

/* The one-shift form (q8.h) on 16 lanes, not yet offset by out_zp nor clamped: a block's
 * multipliers (even channels in place, odd ones moved down), left shifts (when shl), and its
 * eb_q8_fill_fast table. */
typedef struct {
  __m512i me, mo, l, re, ro, se, so, ce, co;
} rq_fast_t;

static inline rq_fast_t rq_fast_at(const int32_t *mult, const int32_t *lsh, const int64_t *f, int shl) {
  return (rq_fast_t){_mm512_loadu_si512(mult), _mm512_loadu_si512(f + 48),
                     shl ? _mm512_loadu_si512(lsh) : _mm512_setzero_si512(),
                     _mm512_loadu_si512(f), _mm512_loadu_si512(f + 8), _mm512_loadu_si512(f + 16),
                     _mm512_loadu_si512(f + 24), _mm512_loadu_si512(f + 32), _mm512_loadu_si512(f + 40)};
}

static inline rq_fast_t rq_fast_load(const eb_q8_requant *rq, int c, int shl) {
  return rq_fast_at(rq->mult + c, rq->lsh + c, rq->fast + (size_t)(c / EB_Q8_BLOCK) * EB_Q8_FAST_BLOCK, shl);
}

/* Whether any of channels [0, n) shifts left (a multiplier >= 1: rare). */
static inline int any_shl(const int32_t *lsh, int n) {
  __mmask16 any = 0;
  for (int i = 0; i < n; i += 16) any |= _mm512_test_epi32_mask(_mm512_loadu_si512(lsh + i), _mm512_loadu_si512(lsh + i));
  return any != 0;
}

static inline __m512i rq_fast(__m512i v, const rq_fast_t *t, int shl) {
  if (shl) v = _mm512_sllv_epi32(v, t->l); /* counts of 32 give 0, as the reference's wrapped shift */
  __m512i pe = _mm512_mul_epi32(v, t->me), po = _mm512_mul_epi32(_mm512_shuffle_epi32(v, _MM_PERM_DDBB), t->mo);
  const __mmask8 ne = _mm512_movepi64_mask(pe), no = _mm512_movepi64_mask(po);
  pe = _mm512_add_epi64(pe, t->re);
  po = _mm512_add_epi64(po, t->ro);
  pe = _mm512_srav_epi64(_mm512_mask_sub_epi64(pe, ne, pe, t->ce), t->se);
  po = _mm512_srav_epi64(_mm512_mask_sub_epi64(po, no, po, t->co), t->so);
  /* the results fit int32: odd channels' low dwords into the odd dwords */
  return _mm512_mask_shuffle_epi32(pe, 0xAAAA, po, _MM_PERM_CCAA);
}

/* TFLite's form (without the table): not yet offset by out_zp nor clamped. */
static inline __m512i rq_slow(__m512i v, const eb_q8_requant *rq, int c) {
  return mbqm16(v, _mm512_loadu_si512(rq->mult + c), _mm512_loadu_si512(rq->lsh + c), _mm512_loadu_si512(rq->rsh + c));
}

/* Output bounds: out_zp (int16 lanes) and the activation range (int8 lanes). */
typedef struct {
  __m512i zp, lo, hi;
} out_t;

static inline out_t out_load(int32_t zp, int32_t lo, int32_t hi) {
  return (out_t){_mm512_set1_epi16((short)zp), _mm512_set1_epi8((char)lo), _mm512_set1_epi8((char)hi)};
}

/* The first n bytes of v to y: plain stores where n is 16, 32 or 64 (the usual channel
 * counts), a masked one otherwise (AMD's masked stores cost several times a plain one, which
 * showed in layers writing 16 or 32 channels a row). */
static inline void store_first(int8_t *y, __m512i v, int n) {
  switch (n) {
    case 64: _mm512_storeu_si512(y, v); break;
    case 32: _mm256_storeu_si256((__m256i *)y, _mm512_castsi512_si256(v)); break;
    case 16: _mm_storeu_si128((__m128i *)y, _mm512_castsi512_si128(v)); break;
    default: _mm512_mask_storeu_epi8(y, n >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << n) - 1, v); break;
  }
}

/* Four vectors of requantized values (16 channels each, in order) plus out_zp to 64 int8,
 * clamped, the bytes of m stored. The saturating packs clamp to int16 (before adding out_zp,
 * |out_zp| <= 128) then to int8, which cannot change the final clamp into [-128, 127]. */
static inline void store4(__m512i v0, __m512i v1, __m512i v2, __m512i v3, const out_t *o, int8_t *y, int n) {
  const __m512i p = _mm512_packs_epi16(_mm512_adds_epi16(_mm512_packs_epi32(v0, v1), o->zp),
                                       _mm512_adds_epi16(_mm512_packs_epi32(v2, v3), o->zp));
  /* dword 4L + j of p holds v_j's channels 4L..4L+3 */
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  store_first(y, _mm512_min_epi8(_mm512_max_epi8(_mm512_permutexvar_epi32(idx, p), o->lo), o->hi), n);
}

static inline __mmask64 first_bytes(int n) { return n >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << n) - 1; }


/* ---- add (eb_ref_add_i8's arithmetic, 16 lanes at a time) ---------------------------------- */

/* MultiplyByQuantizedMultiplier with one (mult, rsh) for all lanes and no left shift, in the
 * one-shift form of q8.h; rsh = 0 has no second rounding, so no tie correction. */
static inline __m512i mbqm_uniform(__m512i v, __m512i m, __m512i round, __m512i sh, __m512i corr) {
  __m512i pe = _mm512_mul_epi32(v, m), po = _mm512_mul_epi32(_mm512_shuffle_epi32(v, _MM_PERM_DDBB), m);
  const __mmask8 ne = _mm512_movepi64_mask(pe), no = _mm512_movepi64_mask(po);
  pe = _mm512_add_epi64(pe, round);
  po = _mm512_add_epi64(po, round);
  pe = _mm512_srav_epi64(_mm512_mask_sub_epi64(pe, ne, pe, corr), sh);
  po = _mm512_srav_epi64(_mm512_mask_sub_epi64(po, no, po, corr), sh);
  return _mm512_mask_shuffle_epi32(pe, 0xAAAA, po, _MM_PERM_CCAA);
}

static inline __m512i ld16(const int8_t *p, __mmask16 m) { return _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)); }

static void add_fast(const eb_q8_add *a, size_t count, const int8_t *x, const int8_t *b, int8_t *y) {
#define U(r) _mm512_set1_epi64((INT64_C(1) << 30) + ((r) ? INT64_C(1) << (30 + (r)) : 0))
  const __m512i za = _mm512_set1_epi32(a->a_zp), zb = _mm512_set1_epi32(a->b_zp);
  const __m512i ma = _mm512_set1_epi64(a->ma), mb = _mm512_set1_epi64(a->mb), my = _mm512_set1_epi64(a->my);
  const __m512i rna = U(a->ra), rnb = U(a->rb), rny = U(a->ry);
  const __m512i sa = _mm512_set1_epi64(31 + a->ra), sb = _mm512_set1_epi64(31 + a->rb), sy = _mm512_set1_epi64(31 + a->ry);
  const __m512i ca = _mm512_set1_epi64(a->ra ? INT64_C(1) << 31 : 0), cb = _mm512_set1_epi64(a->rb ? INT64_C(1) << 31 : 0),
                cy = _mm512_set1_epi64(a->ry ? INT64_C(1) << 31 : 0);
#undef U
  const out_t o = out_load(a->out_zp, a->act_min, a->act_max);
  for (size_t i = 0; i < count; i += 64) {
    const __mmask64 m = first_bytes(count - i < 64 ? (int)(count - i) : 64);
    __m512i v[4];
    for (int q = 0; q < 4; q++) {
      const __mmask16 mq = (__mmask16)(m >> (16 * q));
      const __m512i va = _mm512_slli_epi32(_mm512_sub_epi32(ld16(x + i + 16 * q, mq), za), 20);
      const __m512i vb = _mm512_slli_epi32(_mm512_sub_epi32(ld16(b + i + 16 * q, mq), zb), 20);
      const __m512i sum = _mm512_add_epi32(mbqm_uniform(va, ma, rna, sa, ca), mbqm_uniform(vb, mb, rnb, sb, cb));
      v[q] = mbqm_uniform(sum, my, rny, sy, cy);
    }
    store4(v[0], v[1], v[2], v[3], &o, y + i, count - i < 64 ? (int)(count - i) : 64);
  }
}

void eb_q8_add_avx512(const eb_q8_add *a, size_t count, const int8_t *x, const int8_t *b, int8_t *y) {
  if (!a->la && !a->lb && !a->ly) {
    add_fast(a, count, x, b, y);
    return;
  }
  const __m512i za = _mm512_set1_epi32(a->a_zp), zb = _mm512_set1_epi32(a->b_zp), zy = _mm512_set1_epi32(a->out_zp);
  const __m512i ma = _mm512_set1_epi32(a->ma), la = _mm512_set1_epi32(a->la), ra = _mm512_set1_epi32(a->ra);
  const __m512i mb = _mm512_set1_epi32(a->mb), lb = _mm512_set1_epi32(a->lb), rb = _mm512_set1_epi32(a->rb);
  const __m512i my = _mm512_set1_epi32(a->my), ly = _mm512_set1_epi32(a->ly), ry = _mm512_set1_epi32(a->ry);
  const __m512i lo = _mm512_set1_epi32(a->act_min), hi = _mm512_set1_epi32(a->act_max);
  for (size_t i = 0; i < count; i += 16) {
    const size_t n = count - i;
    const __mmask16 m = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
    const __m512i va = _mm512_slli_epi32(_mm512_sub_epi32(ld16(x + i, m), za), 20);
    const __m512i vb = _mm512_slli_epi32(_mm512_sub_epi32(ld16(b + i, m), zb), 20);
    const __m512i sum = _mm512_add_epi32(mbqm16(va, ma, la, ra), mbqm16(vb, mb, lb, rb));
    __m512i v = _mm512_add_epi32(mbqm16(sum, my, ly, ry), zy);
    v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
    _mm_mask_storeu_epi8(y + i, m, _mm512_cvtepi32_epi8(v));
  }
}

/* ---- quantize (eb_ref_quantize_i8's arithmetic: the true quotient, clamped to +-512,
 * truncated, the exact remainder deciding the rounding half away from zero) ---------------- */

void eb_q8_quantize_avx512(size_t count, const float *x, float scale, int32_t zp, int8_t *y) {
  const __m512 s = _mm512_set1_ps(scale), lim = _mm512_set1_ps(512.0f), half = _mm512_set1_ps(0.5f);
  const __m512i z = _mm512_set1_epi32(zp), one = _mm512_set1_epi32(1);
  const __m512i lo = _mm512_set1_epi32(-128), hi = _mm512_set1_epi32(127);
  for (size_t i = 0; i < count; i += 16) {
    const __mmask16 m = count - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - i)) - 1u);
    __m512 r = _mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), s);
    r = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(r, r, _CMP_ORD_Q), r); /* NaN to 0 before max/min see it */
    r = _mm512_min_ps(_mm512_max_ps(r, _mm512_sub_ps(_mm512_setzero_ps(), lim)), lim);
    __m512i t = _mm512_cvttps_epi32(r);
    const __m512 f = _mm512_sub_ps(r, _mm512_cvtepi32_ps(t));
    t = _mm512_mask_add_epi32(t, _mm512_cmp_ps_mask(f, half, _CMP_GE_OQ), t, one);
    t = _mm512_mask_sub_epi32(t, _mm512_cmp_ps_mask(f, _mm512_sub_ps(_mm512_setzero_ps(), half), _CMP_LE_OQ), t, one);
    t = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(t, z), lo), hi);
    _mm_mask_storeu_epi8(y + i, m, _mm512_cvtepi32_epi8(t));
  }
}

/* ---- depthwise --------------------------------------------------------------------------- */

/* 32 channels per step in two accumulators of 16 lanes: vpdpwssd adds a pair of taps
 * (x_t w_t + x_t' w_t') per lane, the pairs interleaved by unpacklo/hi_epi16, which leave
 * channels 8L..8L+3 (lo) and 8L+4..8L+7 (hi) of each 128-bit lane L; eb_q8_dw_pack lays
 * the weights and bias_in out the same way. The codes multiply as they are, in_zp folded
 * into bias_in; a tap in the padding reads the code in_zp (real 0), as TFLite pads, which
 * bias_in then cancels: no border variant of the arithmetic. */
static inline __m512i dw_tap(const int8_t *p, __mmask32 m) { return _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, p)); }

/* What a block's pixels share: its packed weights, bias_in and requantization (in the
 * accumulators' lane order), output bounds. */
typedef struct {
  const __m512i *w;    /* [pairs][2] */
  const int32_t *bias; /* half lo: bias_in[16], then half hi at + EB_Q8_DW_HALF bytes */
  __m512i zp;          /* in_zp in int16 lanes */
  __mmask32 m;         /* the block's channels */
  int n;               /* how many: the first n of 32 */
  int c, second, fast, shl;
  rq_fast_t f0, f1;    /* lo, hi */
  out_t o;
} dw_blk;

static inline void dw_store(const eb_q8_dw *d, const dw_blk *k, __m512i lo, __m512i hi, int8_t *yp) {
  if (k->fast) {
    /* lanes stay as unpacklo/hi left them: packs_epi32(lo, hi) puts channels 8L..8L+7 in order
     * in 128-bit lane L, then the two packs' dwords 0, 1 of each lane are the 32 bytes */
    const __m512i p = _mm512_adds_epi16(_mm512_packs_epi32(rq_fast(lo, &k->f0, k->shl), rq_fast(hi, &k->f1, k->shl)),
                                        k->o.zp);
    const __m512i idx = _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
    const __m512i b = _mm512_permutexvar_epi32(idx, _mm512_packs_epi16(p, p));
    _mm256_mask_storeu_epi8(yp, k->m, _mm512_castsi512_si256(_mm512_min_epi8(_mm512_max_epi8(b, k->o.lo), k->o.hi)));
    return;
  }
  /* TFLite's form reads the tables in channel order */
  const __m512i idx0 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i idx1 = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  const __m512i v0 = rq_slow(_mm512_permutex2var_epi32(lo, idx0, hi), &d->rq, k->c);
  const __m512i v1 = k->second ? rq_slow(_mm512_permutex2var_epi32(lo, idx1, hi), &d->rq, k->c + 16) : v0;
  store4(v0, v1, v0, v1, &k->o, yp, k->n);
}

/* One output pixel at input corner (iy0, ix0); inside: no tap in the padding. */
static inline __attribute__((always_inline)) void dw_pixel(const eb_q8_dw *d, const dw_blk *k, const int KH,
                                                            const int KW, const int8_t *xb, int iy0, int ix0,
                                                            int inside, int8_t *yp) {
  const eb_conv_geom *g = &d->g;
  const int kh = KH ? KH : g->kh, kw = KW ? KW : g->kw, pairs = (kh * kw + 1) / 2, C = g->ic;
  const size_t row = (size_t)g->iw * C * g->dh, col = (size_t)C * g->dw;
  /* an offset, not a pointer: the window's corner may lie in the padding */
  const ptrdiff_t xw = ((ptrdiff_t)iy0 * g->iw + ix0) * C + k->c;
  __m512i lo = _mm512_loadu_si512(k->bias), hi = _mm512_loadu_si512(k->bias + EB_Q8_DW_HALF / 4);
#pragma GCC unroll 5
  for (int p = 0; p < pairs; p++) {
    __m512i ab[2];
#pragma GCC unroll 2
    for (int j = 0; j < 2; j++) {
      const int t = eb_q8_dw_pair_tap(kh, kw, p, j), ty = t / kw, tx = t % kw;
      if (t < 0) ab[j] = _mm512_setzero_si512(); /* no tap: its weight is 0 */
      else if (inside) ab[j] = dw_tap(xb + xw + ty * row + tx * col, k->m);
      else {
        const int iy = iy0 + ty * g->dh, ix = ix0 + tx * g->dw;
        ab[j] = iy >= 0 && iy < g->ih && ix >= 0 && ix < g->iw ? dw_tap(xb + xw + ty * row + tx * col, k->m) : k->zp;
      }
    }
    lo = _mm512_dpwssd_epi32(lo, _mm512_unpacklo_epi16(ab[0], ab[1]), _mm512_loadu_si512(k->w + 2 * p));
    hi = _mm512_dpwssd_epi32(hi, _mm512_unpackhi_epi16(ab[0], ab[1]), _mm512_loadu_si512(k->w + 2 * p + 1));
  }
  dw_store(d, k, lo, hi, yp);
}

/* 3x3, stride and dilation 1: slide along a whole output row. Input column i gives
 * P(i) = (row 0, row 1) and, with column i + 1, Q(i) = (row 2 at i, row 2 at i + 1); output
 * ox is P(ox) P(ox+1) P(ox+2) against pairs (0,3) (1,4) (2,5), Q(ox) against (6,7) and
 * Q(ox+1) against (-,8): each column is loaded and interleaved once, not three times.
 * Columns and rows in the padding read in_zp. */
typedef struct {
  const int8_t *x; /* the image */
  ptrdiff_t x0;    /* offset of column 0 of window row 0, channel c (may lie in the padding) */
  ptrdiff_t row, col;
  int rv[3], iw;
} dw_cols;

static inline void dw_col(const dw_cols *s, const dw_blk *k, int ix, __m512i *r0, __m512i *r1, __m512i *r2) {
  const int in = ix >= 0 && ix < s->iw;
  const ptrdiff_t o = s->x0 + ix * s->col;
  *r0 = in && s->rv[0] ? dw_tap(s->x + o, k->m) : k->zp;
  *r1 = in && s->rv[1] ? dw_tap(s->x + o + s->row, k->m) : k->zp;
  *r2 = in && s->rv[2] ? dw_tap(s->x + o + 2 * s->row, k->m) : k->zp;
}

/* The 3x3 row kernels' view of input rows iy0..iy0+2 of image xb for block k. */
static void dw_cols_init(dw_cols *s, const eb_conv_geom *g, const dw_blk *k, const int8_t *xb, int iy0) {
  s->row = (ptrdiff_t)g->iw * g->ic;
  s->col = g->ic;
  s->iw = g->iw;
  s->x = xb;
  s->x0 = iy0 * s->row + k->c;
  for (int ky = 0; ky < 3; ky++) s->rv[ky] = iy0 + ky >= 0 && iy0 + ky < g->ih;
}

static void dw_row_s1_33(const eb_q8_dw *d, const dw_blk *k, const int8_t *xb, int iy0, int8_t *yrow) {
  const eb_conv_geom *g = &d->g;
  dw_cols s;
  dw_cols_init(&s, g, k, xb, iy0);
  __m512i w[10];
  for (int i = 0; i < 10; i++) w[i] = _mm512_loadu_si512(k->w + i);
  const __m512i b_lo = _mm512_loadu_si512(k->bias), b_hi = _mm512_loadu_si512(k->bias + EB_Q8_DW_HALF / 4);
  __m512i a0, a1, r2, r2n;
  int ix = -g->pl;
  dw_col(&s, k, ix++, &a0, &a1, &r2);
  __m512i p0l = _mm512_unpacklo_epi16(a0, a1), p0h = _mm512_unpackhi_epi16(a0, a1);
  dw_col(&s, k, ix++, &a0, &a1, &r2n);
  __m512i p1l = _mm512_unpacklo_epi16(a0, a1), p1h = _mm512_unpackhi_epi16(a0, a1);
  __m512i q0l = _mm512_unpacklo_epi16(r2, r2n), q0h = _mm512_unpackhi_epi16(r2, r2n);
  r2 = r2n;
  for (int ox = 0; ox < g->ow; ox++) {
    dw_col(&s, k, ix++, &a0, &a1, &r2n); /* column ox + 2 - pl */
    const __m512i p2l = _mm512_unpacklo_epi16(a0, a1), p2h = _mm512_unpackhi_epi16(a0, a1);
    const __m512i q1l = _mm512_unpacklo_epi16(r2, r2n), q1h = _mm512_unpackhi_epi16(r2, r2n);
    __m512i lo = _mm512_dpwssd_epi32(b_lo, p0l, w[0]), hi = _mm512_dpwssd_epi32(b_hi, p0h, w[1]);
    lo = _mm512_dpwssd_epi32(lo, p1l, w[2]), hi = _mm512_dpwssd_epi32(hi, p1h, w[3]);
    lo = _mm512_dpwssd_epi32(lo, p2l, w[4]), hi = _mm512_dpwssd_epi32(hi, p2h, w[5]);
    lo = _mm512_dpwssd_epi32(lo, q0l, w[6]), hi = _mm512_dpwssd_epi32(hi, q0h, w[7]);
    lo = _mm512_dpwssd_epi32(lo, q1l, w[8]), hi = _mm512_dpwssd_epi32(hi, q1h, w[9]);
    dw_store(d, k, lo, hi, yrow + (size_t)ox * g->oc + k->c);
    p0l = p1l, p0h = p1h, p1l = p2l, p1h = p2h, q0l = q1l, q0h = q1h, r2 = r2n;
  }
}

/* 3x3, stride 2 along x, dilation 1: output ox reads input columns 2ox..2ox+2, and column
 * 2ox+2 is the next output's first, so its pairs P (rows 0, 1) and row 2 are kept: two new
 * columns per output instead of three. Row 2 pairs as (6, 7) and (-, 8), the latter's empty
 * slot multiplying a zero weight. */
static void dw_row_s2_33(const eb_q8_dw *d, const dw_blk *k, const int8_t *xb, int iy0, int8_t *yrow) {
  const eb_conv_geom *g = &d->g;
  dw_cols s;
  dw_cols_init(&s, g, k, xb, iy0);
  __m512i w[10];
  for (int i = 0; i < 10; i++) w[i] = _mm512_loadu_si512(k->w + i);
  const __m512i b_lo = _mm512_loadu_si512(k->bias), b_hi = _mm512_loadu_si512(k->bias + EB_Q8_DW_HALF / 4);
  __m512i a0, a1, r2;
  int ix = -g->pl;
  dw_col(&s, k, ix, &a0, &a1, &r2);
  __m512i p0l = _mm512_unpacklo_epi16(a0, a1), p0h = _mm512_unpackhi_epi16(a0, a1);
  for (int ox = 0; ox < g->ow; ox++, ix += 2) {
    __m512i r2b, r2c;
    dw_col(&s, k, ix + 1, &a0, &a1, &r2b);
    const __m512i p1l = _mm512_unpacklo_epi16(a0, a1), p1h = _mm512_unpackhi_epi16(a0, a1);
    dw_col(&s, k, ix + 2, &a0, &a1, &r2c);
    const __m512i p2l = _mm512_unpacklo_epi16(a0, a1), p2h = _mm512_unpackhi_epi16(a0, a1);
    __m512i lo = _mm512_dpwssd_epi32(b_lo, p0l, w[0]), hi = _mm512_dpwssd_epi32(b_hi, p0h, w[1]);
    lo = _mm512_dpwssd_epi32(lo, p1l, w[2]), hi = _mm512_dpwssd_epi32(hi, p1h, w[3]);
    lo = _mm512_dpwssd_epi32(lo, p2l, w[4]), hi = _mm512_dpwssd_epi32(hi, p2h, w[5]);
    lo = _mm512_dpwssd_epi32(lo, _mm512_unpacklo_epi16(r2, r2b), w[6]);
    hi = _mm512_dpwssd_epi32(hi, _mm512_unpackhi_epi16(r2, r2b), w[7]);
    lo = _mm512_dpwssd_epi32(lo, _mm512_unpacklo_epi16(r2c, r2c), w[8]);
    hi = _mm512_dpwssd_epi32(hi, _mm512_unpackhi_epi16(r2c, r2c), w[9]);
    dw_store(d, k, lo, hi, yrow + (size_t)ox * g->oc + k->c);
    p0l = p2l, p0h = p2h, r2 = r2c;
  }
}

void eb_q8_dw_rows_avx512(const eb_q8_dw *d, const int8_t *x, int8_t *y, int r0, int r1) {
  const eb_conv_geom *g = &d->g;
  const int ox0 = (g->pl + g->sw - 1) / g->sw, last = g->iw - 1 - (g->kw - 1) * g->dw + g->pl;
  const int ox1 = last < 0 ? 0 : last / g->sw + 1;
  const int k33 = g->kh == 3 && g->kw == 3, slide = k33 && g->sw == 1 && g->dw == 1 && g->dh == 1;
  const int slide2 = k33 && g->sw == 2 && g->dw == 1 && g->dh == 1;
  const int blocks = (g->ic + 31) / 32, pairs = (g->kh * g->kw + 1) / 2;
  const int shl = d->rq.fast && any_shl(d->rq.lsh, d->cp);
  for (int r = r0; r < r1; r++) {
    const int b = r / g->oh, oy = r % g->oh;
    const int iy0 = oy * g->sh - g->pt, rows_in = iy0 >= 0 && iy0 + (g->kh - 1) * g->dh < g->ih;
    const int8_t *xb = x + (size_t)b * g->ih * g->iw * g->ic;
    int8_t *yrow = y + (size_t)r * g->ow * g->oc;
    /* channel blocks outside, pixels inside: a block's weights stay in registers along the row */
    for (int cb = 0; cb < blocks; cb++) {
      const uint8_t *blk = (const uint8_t *)d->pk + (size_t)cb * ((size_t)pairs * 2 * 64 + 2 * EB_Q8_DW_HALF);
      /* every field set below (no memset: the struct is over 1 KiB of vectors, and zeroing it
       * per block and row was a visible share of the small layers) */
      dw_blk k;
      k.w = (const __m512i *)blk;
      k.bias = (const int32_t *)(blk + (size_t)pairs * 2 * 64);
      k.zp = _mm512_set1_epi16((short)d->in_zp);
      k.c = 32 * cb;
      const int n = g->ic - k.c < 32 ? g->ic - k.c : 32;
      k.m = n >= 32 ? ~(__mmask32)0 : ((__mmask32)1 << n) - 1;
      k.n = n;
      k.second = k.c + 16 < d->cp; /* the block's upper 16 channels exist in the channel-order tables */
      k.fast = d->rq.fast != NULL;
      k.shl = shl;
      if (!k.fast) k.f0 = k.f1 = (rq_fast_t){0}; /* unread: TFLite's form reads the plan's tables */
      else
        for (int h = 0; h < 2; h++) {
          const int32_t *t = k.bias + h * (EB_Q8_DW_HALF / 4);
          *(h ? &k.f1 : &k.f0) = rq_fast_at(t + 16, t + 32, (const int64_t *)(t + 48), shl);
        }
      k.o = out_load(d->rq.out_zp, d->rq.act_min, d->rq.act_max);
      if (slide || slide2) {
        if (slide) dw_row_s1_33(d, &k, xb, iy0, yrow);
        else dw_row_s2_33(d, &k, xb, iy0, yrow);
        continue;
      }
      const dw_blk kp = k; /* a copy whose address never escapes: its fields can live in registers */
      for (int ox = 0; ox < g->ow; ox++) {
        const int ix0 = ox * g->sw - g->pl, inside = rows_in && ox >= ox0 && ox < ox1;
        int8_t *yp = yrow + (size_t)ox * g->oc + k.c;
        if (k33 && inside) dw_pixel(d, &kp, 3, 3, xb, iy0, ix0, 1, yp);
        else if (k33) dw_pixel(d, &kp, 3, 3, xb, iy0, ix0, 0, yp);
        else dw_pixel(d, &kp, 0, 0, xb, iy0, ix0, inside, yp);
      }
    }
  }
}

/* ---- gemm ---------------------------------------------------------------------------- */

#define MR 4
#define CHUNK 64           /* rows prepared at once, then swept panel by panel */
#define CHUNK_BYTES (MR * EB_Q8_CONV_MAX_K) /* the chunk's u8 activations (on the stack) */

/* Sum of k int8 codes x from their u8 form u = x + 128 (vpsadbw sums unsigned bytes): only
 * for weights with a zero point. */
static inline int32_t rowsum_u8(const uint8_t *u, int k) {
  __m512i s = _mm512_setzero_si512();
  for (int i = 0; i < k; i += 64)
    s = _mm512_add_epi64(s, _mm512_sad_epu8(_mm512_maskz_loadu_epi8(first_bytes(k - i), u + i),
                                            _mm512_setzero_si512()));
  return (int32_t)(_mm512_reduce_add_epi64(s) - 128 * (int64_t)k);
}

static inline int32_t load4(const int8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Row x (k codes) as u8 x + 128 at u, padded to kp (a multiple of 4) with any byte: the
 * packed weights are 0 there. Whole 64-byte stores (AMD's masked stores are slow): up to 63
 * bytes past kp land in the next row, written after this one, or in the buffer's slack. */
static inline void to_u8(const int8_t *x, int k, int kp, uint8_t *u) {
  const __m512i flip = _mm512_set1_epi8((char)0x80);
  for (int i = 0; i < kp; i += 64)
    _mm512_storeu_si512(u + i, _mm512_xor_si512(_mm512_maskz_loadu_epi8(first_bytes(k - i), x + i), flip));
}

/* acc += u . s (u8 by s8, four products per lane) in place. GCC 12 compiles the intrinsic over
 * the tile's 16 accumulators with a register copy per vpdpbusd (they rotate through fresh
 * registers each k step), doubling the inner loop's instructions; the tied asm operand keeps
 * each accumulator put. */
static inline __m512i dpbusd(__m512i acc, __m512i u, __m512i s) {
#if defined(__GNUC__)
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s));
  return acc;
#else
  return _mm512_dpbusd_epi32(acc, u, s);
#endif
}

/* M (MR, or 1 for a lone row: an FC on one sample would otherwise do MR times the work of
 * its weight stream) rows of u8 activations (kp codes each; rows past mr repeat a valid row
 * and are not stored) by nb blocks of 16 channels starting at channel c, whose packed weights
 * are the panel at w; adj: rowcoef * row sum per row, or NULL where rowcoef is 0. direct: the
 * rows are the int8 codes themselves (k of them), flipped as they are broadcast. */
static inline __attribute__((always_inline)) void tile(const eb_q8_gemm *g, const int M, const int nb,
                                                        const int direct, const uint8_t *const *xr,
                                                        const int32_t *adj, int mr, int kp, const int8_t *w, int c,
                                                        int8_t *const *yr, int shl) {
  __m512i acc[MR][EB_Q8_NB];
  /* start from each output's constant part, colterm (- rowcoef * rowsum) (q8.h) */
#pragma GCC unroll 4
  for (int j = 0; j < nb; j++) {
    const __m512i ct = _mm512_loadu_si512(g->colterm + c + 16 * j);
#pragma GCC unroll 4
    for (int r = 0; r < M; r++)
      acc[r][j] = adj ? _mm512_sub_epi32(ct, _mm512_set1_epi32(adj[r < mr ? r : mr - 1])) : ct;
  }
  const int8_t *wp = w;
  for (int i = 0; i < kp; i += 4, wp += nb * 64) {
    __m512i xb[MR];
#pragma GCC unroll 4
    for (int r = 0; r < M; r++) {
      int32_t v;
      if (direct && i + 4 > g->k) {
        v = 0; /* the row's last 1-3 codes: never read past them (the weights are 0 beyond) */
        memcpy(&v, xr[r] + i, (size_t)(g->k - i));
      } else {
        v = load4((const int8_t *)xr[r] + i);
      }
      xb[r] = _mm512_set1_epi32(direct ? (int32_t)((uint32_t)v ^ 0x80808080u) : v);
    }
#pragma GCC unroll 4
    for (int j = 0; j < nb; j++) {
      const __m512i wv = _mm512_loadu_si512(wp + 64 * j);
#pragma GCC unroll 4
      for (int r = 0; r < M; r++) acc[r][j] = dpbusd(acc[r][j], xb[r], wv);
    }
  }
  /* requantize in place (rows past mr too: cheaper than a branch, never stored) */
#pragma GCC unroll 4
  for (int j = 0; j < nb; j++) {
    const int cj = c + 16 * j;
    if (g->rq.fast) {
      const rq_fast_t f = rq_fast_load(&g->rq, cj, shl);
#pragma GCC unroll 4
      for (int r = 0; r < M; r++) acc[r][j] = rq_fast(acc[r][j], &f, shl);
    } else {
#pragma GCC unroll 4
      for (int r = 0; r < M; r++) acc[r][j] = rq_slow(acc[r][j], &g->rq, cj);
    }
  }
  const out_t o = out_load(g->rq.out_zp, g->rq.act_min, g->rq.act_max);
  const int n = g->oc - c < 16 * nb ? g->oc - c : 16 * nb;
  for (int r = 0; r < mr; r++)
    store4(acc[r][0], acc[r][nb > 1 ? 1 : 0], acc[r][nb > 2 ? 2 : 0], acc[r][nb > 3 ? 3 : 0], &o, yr[r] + c, n);
}

/* One panel (nb blocks) over a chunk's rows, the tile's shape fixed at compile time. */
static inline __attribute__((always_inline)) void panel(const eb_q8_gemm *g, const int nb, int nrows,
                                                         const uint8_t *xu, int kp, const int32_t *adj,
                                                         const int8_t *w, int c, int8_t *y, size_t y_stride,
                                                         int shl) {
  for (int r0 = 0; r0 < nrows; r0 += MR) {
    const int mr = nrows - r0 < MR ? nrows - r0 : MR;
    const uint8_t *xr[MR];
    int8_t *yr[MR];
    for (int r = 0; r < MR; r++) {
      const int row = r0 + (r < mr ? r : mr - 1);
      xr[r] = xu + (size_t)row * kp;
      yr[r] = y + (size_t)row * y_stride;
    }
    if (mr == 1) tile(g, 1, nb, 0, xr, adj ? adj + r0 : NULL, mr, kp, w, c, yr, shl);
    else tile(g, MR, nb, 0, xr, adj ? adj + r0 : NULL, mr, kp, w, c, yr, shl);
  }
}

/* Every panel over nrows prepared rows. */
static void sweep(const eb_q8_gemm *g, int nrows, const uint8_t *xu, int kp, const int32_t *adj, int8_t *y,
                  size_t y_stride, int shl) {
  const int blocks = g->ocp / EB_Q8_BLOCK;
  for (int p = 0; p * EB_Q8_NB < blocks; p++) {
    const int nb = blocks - p * EB_Q8_NB < EB_Q8_NB ? blocks - p * EB_Q8_NB : EB_Q8_NB;
    const int8_t *w = (const int8_t *)g->w + (size_t)p * EB_Q8_NB * EB_Q8_BLOCK * kp;
    const int c = p * EB_Q8_NB * EB_Q8_BLOCK;
    switch (nb) {
      case 4: panel(g, 4, nrows, xu, kp, adj, w, c, y, y_stride, shl); break;
      case 3: panel(g, 3, nrows, xu, kp, adj, w, c, y, y_stride, shl); break;
      case 2: panel(g, 2, nrows, xu, kp, adj, w, c, y, y_stride, shl); break;
      default: panel(g, 1, nrows, xu, kp, adj, w, c, y, y_stride, shl); break;
    }
  }
}

/* The chunk buffer: up to CHUNK rows of kp bytes on the stack, fewer when k is large; none
 * for rows over CHUNK_BYTES / MR codes (gemm_direct). */
typedef struct {
  _Alignas(64) uint8_t stack[CHUNK_BYTES + 64]; /* + to_u8's slack */
  int32_t adj[CHUNK];
  uint8_t *u;
  int kp, rows;
} chunk_t;

static void chunk_init(chunk_t *ch, int k) {
  ch->kp = (k + 3) / 4 * 4;
  ch->rows = ch->kp * CHUNK <= CHUNK_BYTES ? CHUNK : CHUNK_BYTES / ch->kp / MR * MR;
  ch->u = ch->stack;
}

/* Requantized products of the chunk's first nrows rows (already u8) into y. */
static void chunk_run(const eb_q8_gemm *g, chunk_t *ch, int nrows, int8_t *y, size_t y_stride, int shl) {
  if (g->rowcoef)
    for (int r = 0; r < nrows; r++)
      ch->adj[r] = (int32_t)((uint32_t)g->rowcoef * (uint32_t)rowsum_u8(ch->u + (size_t)r * ch->kp, g->k));
  sweep(g, nrows, ch->u, ch->kp, g->rowcoef ? ch->adj : NULL, y, y_stride, shl);
}

/* Rows over CHUNK_BYTES / MR codes (k > EB_Q8_CONV_MAX_K: an FC beyond the networks this
 * serves): a row at a time, read in place, each broadcast flipped to u8; no buffer. */
static __attribute__((noinline)) void gemm_direct(const eb_q8_gemm *g, size_t rows, const int8_t *x,
                                                  size_t x_stride, int8_t *y, size_t y_stride, int shl) {
  const int blocks = g->ocp / EB_Q8_BLOCK, kp = (g->k + 3) / 4 * 4;
  for (size_t r = 0; r < rows; r++) {
    const uint8_t *xr = (const uint8_t *)(x + r * x_stride);
    int8_t *yr = y + r * y_stride;
    uint32_t sum = 0;
    for (int i = 0; g->rowcoef && i < g->k; i++) sum += (uint32_t)(int32_t)x[r * x_stride + (size_t)i];
    const int32_t adj = (int32_t)((uint32_t)g->rowcoef * sum), *a = g->rowcoef ? &adj : NULL;
    for (int p = 0; p * EB_Q8_NB < blocks; p++) {
      const int nb = blocks - p * EB_Q8_NB < EB_Q8_NB ? blocks - p * EB_Q8_NB : EB_Q8_NB;
      const int8_t *w = (const int8_t *)g->w + (size_t)p * EB_Q8_NB * EB_Q8_BLOCK * kp;
      const int c = p * EB_Q8_NB * EB_Q8_BLOCK;
      switch (nb) {
        case 4: tile(g, 1, 4, 1, &xr, a, 1, kp, w, c, &yr, shl); break;
        case 3: tile(g, 1, 3, 1, &xr, a, 1, kp, w, c, &yr, shl); break;
        case 2: tile(g, 1, 2, 1, &xr, a, 1, kp, w, c, &yr, shl); break;
        default: tile(g, 1, 1, 1, &xr, a, 1, kp, w, c, &yr, shl); break;
      }
    }
  }
}

void eb_q8_gemm_avx512vnni(const eb_q8_gemm *g, size_t rows, const int8_t *x, size_t x_stride, int8_t *y,
                           size_t y_stride) {
  chunk_t ch;
  chunk_init(&ch, g->k);
  const int shl = g->rq.fast && any_shl(g->rq.lsh, g->ocp);
  if (!ch.rows) {
    gemm_direct(g, rows, x, x_stride, y, y_stride, shl);
    return;
  }
  for (size_t c0 = 0; c0 < rows; c0 += (size_t)ch.rows) {
    const int nrows = rows - c0 < (size_t)ch.rows ? (int)(rows - c0) : ch.rows;
    for (int r = 0; r < nrows; r++) to_u8(x + (c0 + (size_t)r) * x_stride, g->k, ch.kp, ch.u + (size_t)r * ch.kp);
    chunk_run(g, &ch, nrows, y + c0 * y_stride, y_stride, shl);
  }
}

void eb_q8_conv_avx512vnni(const eb_q8_gemm *g, const eb_conv_geom *cg, const int8_t *x, int32_t x_zp, size_t p0,
                           size_t p1, int8_t *y) {
  chunk_t ch;
  chunk_init(&ch, g->k); /* k <= EB_Q8_CONV_MAX_K (q8.h): MR rows at least */
  const int shl = g->rq.fast && any_shl(g->rq.lsh, g->ocp);
  for (size_t c0 = p0; c0 < p1; c0 += (size_t)ch.rows) {
    const int nrows = p1 - c0 < (size_t)ch.rows ? (int)(p1 - c0) : ch.rows;
    eb_q8_im2col(cg, x, x_zp, c0, c0 + (size_t)nrows, (int8_t *)ch.u, (size_t)ch.kp, 1);
    chunk_run(g, &ch, nrows, y + (c0 - p0) * (size_t)g->oc, (size_t)g->oc, shl);
  }
}
