/*
 * The portable body of the int8 kernels (q8.h), written in plain C with
 * fixed-length inner loops over 16 channels so that compilers vectorize them in
 * int32 lanes. Included by q8.c (the target's baseline ISA), which defines
 * EB_Q8_SUFFIX; q8_x86/q8_avx512.c has its own bodies.
 */
#include <string.h>

#include "q8/q8.h"

#define EB_Q8_CAT2(a, b) a##b
#define EB_Q8_CAT(a, b) EB_Q8_CAT2(a, b)
#define EB_Q8_FN(name) EB_Q8_CAT(name, EB_Q8_SUFFIX)

/* MultiplyByQuantizedMultiplier (see q8.h for the branch-free form). */
static inline int32_t EB_Q8_FN(q8_mbqm_)(int32_t acc, int32_t mult, int32_t lsh, int32_t rsh) {
  const int32_t a = (int32_t)(uint32_t)((uint64_t)(uint32_t)acc << lsh);
  const int32_t hi = (int32_t)(((int64_t)a * mult + (INT64_C(1) << 30)) >> 31);
  const int32_t mask = (int32_t)((UINT32_C(1) << rsh) - 1u);
  const int32_t rem = hi & mask, thr = (mask >> 1) + (hi < 0);
  return (hi >> rsh) + (rem > thr);
}

static inline int8_t EB_Q8_FN(q8_out_)(int32_t acc, int32_t mult, int32_t lsh, int32_t rsh, const eb_q8_requant *rq) {
  int32_t v = EB_Q8_FN(q8_mbqm_)(acc, mult, lsh, rsh) + rq->out_zp;
  v = v < rq->act_min ? rq->act_min : v;
  v = v > rq->act_max ? rq->act_max : v;
  return (int8_t)v;
}

/* n <= 16 accumulators of channels [c, c + n) to int8. */
static inline void EB_Q8_FN(q8_requant_)(const int32_t *acc, const eb_q8_requant *rq, int c, int n, int8_t *y) {
  for (int j = 0; j < n; j++) y[j] = EB_Q8_FN(q8_out_)(acc[j], rq->mult[c + j], rq->lsh[c + j], rq->rsh[c + j], rq);
}

/* ---- depthwise ------------------------------------------------------------------ */

/* One output pixel, channels [c, c + n): n is EB_Q8_BLOCK (a constant after inlining,
 * so the loops become vector code) except for the last block. inside: the whole window
 * lies in the input, so the zero point is already folded into bias_in. */
static inline __attribute__((always_inline)) void EB_Q8_FN(dw_block_)(const eb_q8_dw *d, const int8_t *x, int b,
                                                                       int oy, int ox, int c, int n, int inside,
                                                                       int8_t *y) {
  const eb_conv_geom *g = &d->g;
  int32_t acc[EB_Q8_BLOCK];
  const int32_t zp = inside ? 0 : d->in_zp;
  for (int j = 0; j < n; j++) acc[j] = inside ? d->bias_in[c + j] : d->bias[c + j];
  for (int ky = 0; ky < g->kh; ky++) {
    const int iy = oy * g->sh - g->pt + ky * g->dh;
    if (iy < 0 || iy >= g->ih) continue;
    for (int kx = 0; kx < g->kw; kx++) {
      const int ix = ox * g->sw - g->pl + kx * g->dw;
      if (ix < 0 || ix >= g->iw) continue;
      const int8_t *xp = x + (((size_t)b * g->ih + iy) * g->iw + ix) * g->ic + c;
      const int32_t *wp = d->w + (size_t)(ky * g->kw + kx) * d->cp + c;
      for (int j = 0; j < n; j++) acc[j] += ((int32_t)xp[j] - zp) * wp[j];
    }
  }
  EB_Q8_FN(q8_requant_)(acc, &d->rq, c, n, y);
}

void EB_Q8_FN(eb_q8_dw_rows_)(const eb_q8_dw *d, const int8_t *x, int8_t *y, int r0, int r1) {
  const eb_conv_geom *g = &d->g;
  const int full = g->ic / EB_Q8_BLOCK * EB_Q8_BLOCK;
  /* output columns whose window lies inside the input along x: [ox0, ox1) */
  const int ox0 = (g->pl + g->sw - 1) / g->sw;
  int ox1 = (g->iw - 1 - (g->kw - 1) * g->dw + g->pl) / g->sw + 1;
  if (g->iw - 1 - (g->kw - 1) * g->dw + g->pl < 0) ox1 = 0;
  for (int r = r0; r < r1; r++) {
    const int b = r / g->oh, oy = r % g->oh;
    const int iy0 = oy * g->sh - g->pt, rows_in = iy0 >= 0 && iy0 + (g->kh - 1) * g->dh < g->ih;
    for (int ox = 0; ox < g->ow; ox++) {
      int8_t *yp = y + ((size_t)r * g->ow + ox) * g->oc;
      if (rows_in && ox >= ox0 && ox < ox1)
        for (int c = 0; c < full; c += EB_Q8_BLOCK) EB_Q8_FN(dw_block_)(d, x, b, oy, ox, c, EB_Q8_BLOCK, 1, yp + c);
      else
        for (int c = 0; c < full; c += EB_Q8_BLOCK) EB_Q8_FN(dw_block_)(d, x, b, oy, ox, c, EB_Q8_BLOCK, 0, yp + c);
      if (full < g->ic) EB_Q8_FN(dw_block_)(d, x, b, oy, ox, full, g->ic - full, 0, yp + full);
    }
  }
}

/* ---- add ------------------------------------------------------------------------- */

void EB_Q8_FN(eb_q8_add_)(const eb_q8_add *a, size_t count, const int8_t *x, const int8_t *b, int8_t *y) {
  for (size_t i = 0; i < count; i++) {
    const int32_t va = ((int32_t)x[i] - a->a_zp) * (1 << 20), vb = ((int32_t)b[i] - a->b_zp) * (1 << 20);
    const int32_t s = EB_Q8_FN(q8_mbqm_)(va, a->ma, a->la, a->ra) + EB_Q8_FN(q8_mbqm_)(vb, a->mb, a->lb, a->rb);
    int32_t v = EB_Q8_FN(q8_mbqm_)(s, a->my, a->ly, a->ry) + a->out_zp;
    v = v < a->act_min ? a->act_min : v;
    y[i] = (int8_t)(v > a->act_max ? a->act_max : v);
  }
}

/* ---- global average pool ----------------------------------------------------------- */

/* eb_ref_global_avgpool_i8's integers, summed pixel by pixel over a run of channels (the
 * reference walks each channel down the pixels, a stride of c bytes per add); the int32 sums
 * wrap alike, and the load-time check keeps them exact anyway. */
void EB_Q8_FN(eb_q8_global_avgpool_)(int n, int hw, int c, const int8_t *x, float in_scale, float out_scale,
                                     const eb_q8_io *q, int8_t *y) {
  enum { RUN = 256 };
  int32_t mult;
  int shift;
  eb_quantize_multiplier((double)in_scale / ((double)out_scale * (double)hw), &mult, &shift);
  const eb_q8_requant rq = {NULL, NULL, NULL, q->out_zp, q->act_min, q->act_max, NULL};
  const int32_t lsh = shift > 0 ? (shift > 32 ? 32 : shift) : 0, rsh = shift > 0 ? 0 : -shift;
  for (int b = 0; b < n; b++)
    for (int c0 = 0; c0 < c; c0 += RUN) {
      const int nc = c - c0 < RUN ? c - c0 : RUN;
      const int8_t *xb = x + (size_t)b * hw * c + c0;
      int32_t acc[RUN];
      for (int j = 0; j < nc; j++) acc[j] = -(int32_t)((uint32_t)hw * (uint32_t)q->in_zp);
      for (int p = 0; p < hw; p++)
        for (int j = 0; j < nc; j++) acc[j] += xb[(size_t)p * c + j];
      for (int j = 0; j < nc; j++) y[(size_t)b * c + c0 + j] = EB_Q8_FN(q8_out_)(acc[j], mult, lsh, rsh, &rq);
    }
}

/* ---- gemm (portable layout: per panel [k][nb*16] s8) -------------------------------- */
#if defined(EB_Q8_WITH_GEMM)

static inline int32_t EB_Q8_FN(rowsum_)(const int8_t *x, int k) {
  int32_t s = 0;
  for (int i = 0; i < k; i++) s += x[i];
  return s;
}

/* Up to 4 rows by one block of 16 channels; rows past mr repeat the last row's pointer
 * (computed, not stored). */
static inline void EB_Q8_FN(gemm_tile_)(const eb_q8_gemm *g, const int8_t *const *xr, const int32_t *adj, int mr,
                                        const int8_t *w, int wstride, int c, int8_t *const *yr) {
  int32_t acc[4][EB_Q8_BLOCK];
  /* one row at a time: the 16 accumulators stay in vector registers over the whole k loop
   * (weights are re-read from L1 per row). An int8 x int8 product fits int16, so baseline
   * SIMD (SSE2, NEON) multiplies in 16-bit lanes and widens only to accumulate. GCC and
   * Clang get that spelled out in generic vectors (their vectorizers miss it here). */
  for (int r = 0; r < mr; r++) {
    const int8_t *xp = xr[r];
#if defined(__GNUC__) && (defined(__clang__) || __GNUC__ >= 9)
    typedef int8_t v16qi __attribute__((vector_size(16)));
    typedef int16_t v16hi __attribute__((vector_size(32)));
    typedef int32_t v16si __attribute__((vector_size(64)));
    v16si a = {0};
    for (int i = 0; i < g->k; i++) {
      v16qi wq;
      memcpy(&wq, w + (size_t)i * wstride, sizeof wq);
      const v16hi prod = __builtin_convertvector(wq, v16hi) * (int16_t)xp[i];
      a += __builtin_convertvector(prod, v16si);
    }
    memcpy(acc[r], &a, sizeof a);
#else
    int32_t a[EB_Q8_BLOCK] = {0};
    for (int i = 0; i < g->k; i++) {
      const int8_t *wi = w + (size_t)i * wstride;
      const int16_t xv = xp[i];
      for (int j = 0; j < EB_Q8_BLOCK; j++) a[j] += (int16_t)(xv * wi[j]);
    }
    memcpy(acc[r], a, sizeof a);
#endif
  }
  const int n = g->oc - c < EB_Q8_BLOCK ? g->oc - c : EB_Q8_BLOCK;
  for (int r = 0; r < mr; r++) {
    int32_t v[EB_Q8_BLOCK];
    for (int j = 0; j < EB_Q8_BLOCK; j++)
      v[j] = (int32_t)((uint32_t)acc[r][j] + (uint32_t)g->colterm[c + j] - (uint32_t)adj[r]);
    EB_Q8_FN(q8_requant_)(v, &g->rq, c, n, yr[r] + c);
  }
}

void EB_Q8_FN(eb_q8_gemm_)(const eb_q8_gemm *g, size_t rows, const int8_t *x, size_t x_stride, int8_t *y,
                           size_t y_stride) {
  const int blocks = g->ocp / EB_Q8_BLOCK;
  for (size_t r0 = 0; r0 < rows; r0 += 4) {
    const int mr = rows - r0 < 4 ? (int)(rows - r0) : 4;
    const int8_t *xr[4];
    int8_t *yr[4];
    int32_t adj[4];
    for (int r = 0; r < 4; r++) {
      const size_t row = r0 + (size_t)(r < mr ? r : mr - 1);
      xr[r] = x + row * x_stride;
      yr[r] = y + row * y_stride;
      adj[r] = g->rowcoef ? (int32_t)((uint32_t)g->rowcoef * (uint32_t)EB_Q8_FN(rowsum_)(xr[r], g->k)) : 0;
    }
    for (int blk = 0; blk < blocks; blk++) {
      const int p = blk / EB_Q8_NB, nb = blocks - p * EB_Q8_NB < EB_Q8_NB ? blocks - p * EB_Q8_NB : EB_Q8_NB;
      const int8_t *w = (const int8_t *)g->w + (size_t)p * EB_Q8_NB * EB_Q8_BLOCK * g->k +
                        (size_t)(blk - p * EB_Q8_NB) * EB_Q8_BLOCK;
      EB_Q8_FN(gemm_tile_)(g, xr, adj, mr, w, nb * EB_Q8_BLOCK, blk * EB_Q8_BLOCK, yr);
    }
  }
}
#endif
