/*
 * AVX-512 int8 kernels: the GEMM on AVX512-VNNI (vpdpbusd: u8 weights + 128 times
 * s8 activations, 4 products per int32 lane), the depthwise and add bodies of
 * q8_impl.h compiled for AVX-512, and one vector requantization shared by all.
 * Only this file gets -mavx512*; q8.c calls it where the CPU reports VNNI.
 */
#include <immintrin.h>
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

static inline __m128i out16(__m512i v, const eb_q8_requant *rq, int c) {
  v = mbqm16(v, _mm512_loadu_si512(rq->mult + c), _mm512_loadu_si512(rq->lsh + c), _mm512_loadu_si512(rq->rsh + c));
  v = _mm512_add_epi32(v, _mm512_set1_epi32(rq->out_zp));
  v = _mm512_max_epi32(v, _mm512_set1_epi32(rq->act_min));
  v = _mm512_min_epi32(v, _mm512_set1_epi32(rq->act_max));
  return _mm512_cvtepi32_epi8(v);
}

static inline void requant16(const int32_t *acc, const eb_q8_requant *rq, int c, int8_t *y) {
  _mm_storeu_si128((__m128i *)y, out16(_mm512_loadu_si512(acc), rq, c));
}

#define EB_Q8_SUFFIX avx512
#define EB_Q8_REQUANT16 requant16
#define EB_Q8_SKIP_DW
#define EB_Q8_SKIP_ADD
#include "q8/q8_impl.h"

/* ---- add (eb_ref_add_i8's arithmetic, 16 lanes at a time) ---------------------------------- */

void eb_q8_add_avx512(const eb_q8_add *a, size_t count, const int8_t *x, const int8_t *b, int8_t *y) {
  const __m512i za = _mm512_set1_epi32(a->a_zp), zb = _mm512_set1_epi32(a->b_zp), zy = _mm512_set1_epi32(a->out_zp);
  const __m512i ma = _mm512_set1_epi32(a->ma), la = _mm512_set1_epi32(a->la), ra = _mm512_set1_epi32(a->ra);
  const __m512i mb = _mm512_set1_epi32(a->mb), lb = _mm512_set1_epi32(a->lb), rb = _mm512_set1_epi32(a->rb);
  const __m512i my = _mm512_set1_epi32(a->my), ly = _mm512_set1_epi32(a->ly), ry = _mm512_set1_epi32(a->ry);
  const __m512i lo = _mm512_set1_epi32(a->act_min), hi = _mm512_set1_epi32(a->act_max);
  for (size_t i = 0; i < count; i += 16) {
    const size_t n = count - i;
    const __mmask16 m = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
    const __m512i va = _mm512_slli_epi32(_mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, x + i)), za), 20);
    const __m512i vb = _mm512_slli_epi32(_mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, b + i)), zb), 20);
    const __m512i sum = _mm512_add_epi32(mbqm16(va, ma, la, ra), mbqm16(vb, mb, lb, rb));
    __m512i v = _mm512_add_epi32(mbqm16(sum, my, ly, ry), zy);
    v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
    _mm_mask_storeu_epi8(y + i, m, _mm512_cvtepi32_epi8(v));
  }
}

/* ---- depthwise --------------------------------------------------------------------------- */

static inline __m512i ld16(const int8_t *p, __mmask16 m) { return _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)); }

/* One output pixel whose window lies inside the input: codes times weights, zero point
 * folded into bias_in. KH/KW are constants (3x3) or 0 for the layer's own. */
static inline __attribute__((always_inline)) void dw_inside(const eb_q8_dw *d, const int KH, const int KW,
                                                             const int8_t *xw, int8_t *yp) {
  const eb_conv_geom *g = &d->g;
  const int kh = KH ? KH : g->kh, kw = KW ? KW : g->kw, C = g->ic;
  const size_t row = (size_t)g->iw * C * g->dh, col = (size_t)C * g->dw;
  for (int c = 0; c < C; c += 16) {
    const int n = C - c;
    const __mmask16 m = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
    __m512i acc = _mm512_loadu_si512(d->bias_in + c);
    const int32_t *wp = d->w + c;
#pragma GCC unroll 3
    for (int ky = 0; ky < kh; ky++)
#pragma GCC unroll 3
      for (int kx = 0; kx < kw; kx++)
        acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(ld16(xw + ky * row + kx * col + c, m),
                                                       _mm512_loadu_si512(wp + (size_t)(ky * kw + kx) * d->cp)));
    _mm_mask_storeu_epi8(yp + c, m, out16(acc, &d->rq, c));
  }
}

/* A pixel at the border: only the taps inside the input, each minus the zero point. */
static void dw_border(const eb_q8_dw *d, const int8_t *xb, int oy, int ox, int8_t *yp) {
  const eb_conv_geom *g = &d->g;
  const int C = g->ic;
  const __m512i zp = _mm512_set1_epi32(d->in_zp);
  for (int c = 0; c < C; c += 16) {
    const int n = C - c;
    const __mmask16 m = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
    __m512i acc = _mm512_loadu_si512(d->bias + c);
    for (int ky = 0; ky < g->kh; ky++) {
      const int iy = oy * g->sh - g->pt + ky * g->dh;
      if (iy < 0 || iy >= g->ih) continue;
      for (int kx = 0; kx < g->kw; kx++) {
        const int ix = ox * g->sw - g->pl + kx * g->dw;
        if (ix < 0 || ix >= g->iw) continue;
        const __m512i xv = _mm512_sub_epi32(ld16(xb + ((size_t)iy * g->iw + ix) * C + c, m), zp);
        acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(xv, _mm512_loadu_si512(d->w + (size_t)(ky * g->kw + kx) * d->cp + c)));
      }
    }
    _mm_mask_storeu_epi8(yp + c, m, out16(acc, &d->rq, c));
  }
}

void eb_q8_dw_rows_avx512(const eb_q8_dw *d, const int8_t *x, int8_t *y, int r0, int r1) {
  const eb_conv_geom *g = &d->g;
  const int ox0 = (g->pl + g->sw - 1) / g->sw, last = g->iw - 1 - (g->kw - 1) * g->dw + g->pl;
  const int ox1 = last < 0 ? 0 : last / g->sw + 1;
  const int k33 = g->kh == 3 && g->kw == 3;
  for (int r = r0; r < r1; r++) {
    const int b = r / g->oh, oy = r % g->oh;
    const int iy0 = oy * g->sh - g->pt, rows_in = iy0 >= 0 && iy0 + (g->kh - 1) * g->dh < g->ih;
    const int8_t *xb = x + (size_t)b * g->ih * g->iw * g->ic;
    for (int ox = 0; ox < g->ow; ox++) {
      int8_t *yp = y + ((size_t)r * g->ow + ox) * g->oc;
      if (rows_in && ox >= ox0 && ox < ox1) {
        const int8_t *xw = xb + ((size_t)iy0 * g->iw + (size_t)(ox * g->sw - g->pl)) * g->ic;
        if (k33) dw_inside(d, 3, 3, xw, yp);
        else dw_inside(d, 0, 0, xw, yp);
      } else {
        dw_border(d, xb, oy, ox, yp);
      }
    }
  }
}

/* ---- gemm ---------------------------------------------------------------------------- */

#define MR 4
#define CHUNK 64 /* rows whose row sums are computed once, then swept panel by panel */

static inline int32_t load4(const int8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

static inline int32_t rowsum(const int8_t *x, int k) {
  int32_t s = 0;
  for (int i = 0; i < k; i++) s += x[i];
  return s;
}

/* MR rows (rows past mr repeat a valid row; not stored) by nb blocks of 16 channels
 * starting at channel c, whose packed weights are the panel at w. */
static inline __attribute__((always_inline)) void tile(const eb_q8_gemm *g, const int nb, const int8_t *const *xr,
                                                        const int32_t *adj, int mr, const uint8_t *w, int c,
                                                        int8_t *const *yr) {
  __m512i acc[MR][EB_Q8_NB];
#pragma GCC unroll 4
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int j = 0; j < nb; j++) acc[r][j] = _mm512_setzero_si512();
  const int k4 = g->k / 4, kt = g->k % 4;
  const uint8_t *wp = w;
  for (int i = 0; i < k4; i++, wp += nb * 64) {
    __m512i xb[MR];
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) xb[r] = _mm512_set1_epi32(load4(xr[r] + 4 * i));
#pragma GCC unroll 4
    for (int j = 0; j < nb; j++) {
      const __m512i wv = _mm512_loadu_si512(wp + 64 * j);
#pragma GCC unroll 4
      for (int r = 0; r < MR; r++) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], wv, xb[r]);
    }
  }
  if (kt) {
    /* the last 1-3 codes of each row: never read past the row (the packed weights are
     * zero there, so the zeros filling the lane multiply to nothing) */
    __m512i xb[MR];
    for (int r = 0; r < MR; r++) {
      int32_t v = 0;
      memcpy(&v, xr[r] + 4 * k4, (size_t)kt);
      xb[r] = _mm512_set1_epi32(v);
    }
#pragma GCC unroll 4
    for (int j = 0; j < nb; j++) {
      const __m512i wv = _mm512_loadu_si512(wp + 64 * j);
#pragma GCC unroll 4
      for (int r = 0; r < MR; r++) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], wv, xb[r]);
    }
  }
#pragma GCC unroll 4
  for (int j = 0; j < nb; j++) {
    const int cj = c + 16 * j, n = g->oc - cj;
    const __mmask16 keep = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
    const __m512i ct = _mm512_loadu_si512(g->colterm + cj);
    for (int r = 0; r < mr; r++) {
      const __m512i v = _mm512_sub_epi32(_mm512_add_epi32(acc[r][j], ct), _mm512_set1_epi32(adj[r]));
      _mm_mask_storeu_epi8(yr[r] + cj, keep, out16(v, &g->rq, cj));
    }
  }
}

void eb_q8_gemm_avx512vnni(const eb_q8_gemm *g, size_t rows, const int8_t *x, size_t x_stride, int8_t *y,
                           size_t y_stride) {
  const int blocks = g->ocp / EB_Q8_BLOCK, panels = (blocks + EB_Q8_NB - 1) / EB_Q8_NB;
  const size_t kp = (size_t)(g->k + 3) / 4 * 4;
  int32_t adj[CHUNK];
  for (size_t c0 = 0; c0 < rows; c0 += CHUNK) {
    const int nrows = rows - c0 < CHUNK ? (int)(rows - c0) : CHUNK;
    for (int r = 0; r < nrows; r++)
      adj[r] = (int32_t)((uint32_t)g->rowcoef * (uint32_t)rowsum(x + (c0 + (size_t)r) * x_stride, g->k));
    for (int p = 0; p < panels; p++) {
      const int nb = blocks - p * EB_Q8_NB < EB_Q8_NB ? blocks - p * EB_Q8_NB : EB_Q8_NB;
      const uint8_t *w = (const uint8_t *)g->w + (size_t)p * EB_Q8_NB * EB_Q8_BLOCK * kp;
      for (int r0 = 0; r0 < nrows; r0 += MR) {
        const int mr = nrows - r0 < MR ? nrows - r0 : MR;
        const int8_t *xr[MR];
        int8_t *yr[MR];
        for (int r = 0; r < MR; r++) {
          const size_t row = c0 + (size_t)r0 + (size_t)(r < mr ? r : mr - 1);
          xr[r] = x + row * x_stride;
          yr[r] = y + row * y_stride;
        }
        const int c = p * EB_Q8_NB * EB_Q8_BLOCK;
        switch (nb) {
          case 4: tile(g, 4, xr, adj + r0, mr, w, c, yr); break;
          case 3: tile(g, 3, xr, adj + r0, mr, w, c, yr); break;
          case 2: tile(g, 2, xr, adj + r0, mr, w, c, yr); break;
          default: tile(g, 1, xr, adj + r0, mr, w, c, yr); break;
        }
      }
    }
  }
}
