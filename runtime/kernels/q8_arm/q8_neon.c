/*
 * NEON int8 kernels (aarch64, and armv7 where only this file is built with
 * -mfpu=neon-vfpv4 and q8.c checks HWCAP_NEON first): the same bytes as the reference
 * kernels in ref/ref_int8.c, which tests/c/test_q8_kernels.c checks.
 *
 * GEMM: weights in EB_Q8_LAYOUT_K2 ([k/2][16][2] s8 per block of 16 channels). A pair of
 * activation codes (x_i, x_i+1) is broadcast to 8 bytes; vmull_s8 multiplies it by the pairs
 * of 4 channels into 8 int16 products and vpadalq_s16 adds each channel's two into its int32
 * lane. No Cortex-A72 (Pi 4) has sdot; this is what its NEON does best without it. Where no
 * weight code is -128 (eb_q8_gemm.w_no_min), two pairs are summed in int16 first (vmull +
 * vmlal, |sum| <= 2 * 128 * 127 < 2^15), one widening add per 4 products instead of 2.
 *
 * Requantization is TFLite's MultiplyByQuantizedMultiplier as TFLite and gemmlowp write it
 * for NEON, which is exact against the scalar reference (eb_mul_by_quantized_multiplier):
 *  - the left shift is vshlq_s32 (not saturating: wraps like the reference's shifted value;
 *    a count of 32 gives 0 as the reference's does);
 *  - SaturatingRoundingDoublingHighMul(a, q) is vqrdmulhq_s32: sat((2 a q + 2^31) >> 32) =
 *    floor((a q + 2^30) / 2^31), which is the reference's nudge-then-truncate for either sign
 *    of a q (ties round up, toward +inf, in both). It saturates only for a = q = INT32_MIN,
 *    and q >= 0 here.
 *  - RoundingDivideByPOT(h, r) rounds ties away from zero; vrshlq_s32(h, -r) rounds them up
 *    (computed without overflow). Subtracting 1 from negative h first (the "fixup"
 *    (h & -r) >> 31, which is 0 for r = 0 since -0 has no sign bit) turns an upward tie into
 *    a downward one and moves no other value across a rounding boundary. vqaddq keeps
 *    INT32_MIN there, whose quotient by 2^r is exact either way.
 * Then + out_zp and the clamp go through saturating narrows (int32 -> int16, + out_zp in
 * int16, -> int8): a value that saturates is beyond [-128, 127] either way, so the final
 * clamp to [act_min, act_max] is unchanged.
 */
#include <arm_neon.h>
#include <string.h>

#include "q8/q8.h"

#if defined(__aarch64__)
#define MR 4 /* rows per GEMM tile: 16 accumulators of the 32 q registers */
#else
#define MR 2 /* 16 q registers on armv7 */
#endif

/* ---- requantization -------------------------------------------------------------------- */

/* MultiplyByQuantizedMultiplier on 4 lanes; nrsh = -rsh (see the top of this file). */
static inline int32x4_t mbqm4(int32x4_t v, int32x4_t mult, int32x4_t lsh, int32x4_t nrsh) {
  v = vqrdmulhq_s32(vshlq_s32(v, lsh), mult);
  const int32x4_t fixup = vshrq_n_s32(vandq_s32(v, nrsh), 31);
  return vrshlq_s32(vqaddq_s32(v, fixup), nrsh);
}

/* Requantized int32 lanes (not yet offset) of 16 channels to int8 with out_zp and the clamp. */
typedef struct {
  int16x8_t zp;
  int8x16_t lo, hi;
} out_t;

static inline out_t out_load(int32_t zp, int32_t lo, int32_t hi) {
  return (out_t){vdupq_n_s16((int16_t)zp), vdupq_n_s8((int8_t)lo), vdupq_n_s8((int8_t)hi)};
}

static inline int8x16_t narrow16(int32x4_t v0, int32x4_t v1, int32x4_t v2, int32x4_t v3, const out_t *o) {
  const int16x8_t a = vqaddq_s16(vcombine_s16(vqmovn_s32(v0), vqmovn_s32(v1)), o->zp);
  const int16x8_t b = vqaddq_s16(vcombine_s16(vqmovn_s32(v2), vqmovn_s32(v3)), o->zp);
  return vminq_s8(vmaxq_s8(vcombine_s8(vqmovn_s16(a), vqmovn_s16(b)), o->lo), o->hi);
}

static inline void store_n(int8_t *y, int8x16_t v, int n) {
  if (n == 16) {
    vst1q_s8(y, v);
  } else {
    int8_t t[16];
    vst1q_s8(t, v);
    memcpy(y, t, (size_t)n);
  }
}

/* acc[4] of channels [c, c + 16) (the tables are padded to whole blocks) to y[0, n). */
static inline void requant_store(const int32x4_t *acc, const eb_q8_requant *rq, const out_t *o, int c, int n,
                                 int8_t *y) {
  int32x4_t v[4];
  for (int q = 0; q < 4; q++) {
    const int at = c + 4 * q;
    v[q] = mbqm4(acc[q], vld1q_s32(rq->mult + at), vld1q_s32(rq->lsh + at), vnegq_s32(vld1q_s32(rq->rsh + at)));
  }
  store_n(y, narrow16(v[0], v[1], v[2], v[3], o), n);
}

/* ---- gemm ------------------------------------------------------------------------------ */

/* x_i, x_i+1 repeated 4 times (no alignment assumed). */
static inline int8x8_t xpair(const int8_t *p) {
  int16_t v;
  memcpy(&v, p, sizeof v);
  return vreinterpret_s8_s16(vdup_n_s16(v));
}

/* One pair of taps into the 4 accumulators of a row: w0 holds channels 0..7, w1 8..15. */
#define PAIR1(a, w0, w1, xv)                                                 \
  do {                                                                       \
    (a)[0] = vpadalq_s16((a)[0], vmull_s8(vget_low_s8(w0), (xv)));           \
    (a)[1] = vpadalq_s16((a)[1], vmull_s8(vget_high_s8(w0), (xv)));          \
    (a)[2] = vpadalq_s16((a)[2], vmull_s8(vget_low_s8(w1), (xv)));           \
    (a)[3] = vpadalq_s16((a)[3], vmull_s8(vget_high_s8(w1), (xv)));          \
  } while (0)

/* Two pairs (weights w0, w1 then v0, v1), summed in int16: only when no weight is -128. */
#define PAIR2(a, w0, w1, xv, v0, v1, xu)                                                          \
  do {                                                                                            \
    (a)[0] = vpadalq_s16((a)[0], vmlal_s8(vmull_s8(vget_low_s8(w0), (xv)), vget_low_s8(v0), (xu)));   \
    (a)[1] = vpadalq_s16((a)[1], vmlal_s8(vmull_s8(vget_high_s8(w0), (xv)), vget_high_s8(v0), (xu))); \
    (a)[2] = vpadalq_s16((a)[2], vmlal_s8(vmull_s8(vget_low_s8(w1), (xv)), vget_low_s8(v1), (xu)));   \
    (a)[3] = vpadalq_s16((a)[3], vmlal_s8(vmull_s8(vget_high_s8(w1), (xv)), vget_high_s8(v1), (xu))); \
  } while (0)

/* sum x[0, k) (int8 codes) for the rowcoef term. */
static int32_t rowsum(const int8_t *x, int k) {
  int32x4_t s = vdupq_n_s32(0);
  int i = 0;
  for (; i + 16 <= k; i += 16) s = vpadalq_s16(s, vpaddlq_s8(vld1q_s8(x + i)));
  int32_t t = vgetq_lane_s32(s, 0) + vgetq_lane_s32(s, 1) + vgetq_lane_s32(s, 2) + vgetq_lane_s32(s, 3);
  for (; i < k; i++) t += x[i];
  return t;
}

/* MR rows (pointers repeat the last real row past mr) by one block of 16 channels whose
 * packed weights start at w; pairs2: the w_no_min path. */
static inline __attribute__((always_inline)) void gemm_tile(const eb_q8_gemm *g, const int8_t *const *xr,
                                                            const int32_t *adj, int mr, const int8_t *w, int c,
                                                            int pairs2, const out_t *o, int8_t *const *yr) {
  int32x4_t acc[MR][4];
  for (int r = 0; r < MR; r++)
    for (int q = 0; q < 4; q++) acc[r][q] = vdupq_n_s32(0);
  const int k = g->k, even = k & ~1;
  int i = 0;
  if (pairs2)
    for (; i + 4 <= even; i += 4, w += 64) {
      const int8x16_t w0 = vld1q_s8(w), w1 = vld1q_s8(w + 16), v0 = vld1q_s8(w + 32), v1 = vld1q_s8(w + 48);
      for (int r = 0; r < MR; r++) PAIR2(acc[r], w0, w1, xpair(xr[r] + i), v0, v1, xpair(xr[r] + i + 2));
    }
  for (; i < even; i += 2, w += 32) {
    const int8x16_t w0 = vld1q_s8(w), w1 = vld1q_s8(w + 16);
    for (int r = 0; r < MR; r++) PAIR1(acc[r], w0, w1, xpair(xr[r] + i));
  }
  if (k & 1) { /* the last tap's pair holds a zero weight: x_k is never read */
    const int8x16_t w0 = vld1q_s8(w), w1 = vld1q_s8(w + 16);
    for (int r = 0; r < MR; r++) PAIR1(acc[r], w0, w1, vdup_n_s8(xr[r][k - 1]));
  }
  const int n = g->oc - c < EB_Q8_BLOCK ? g->oc - c : EB_Q8_BLOCK;
  for (int r = 0; r < mr; r++) {
    /* acc + colterm - rowcoef * sum x, wrapping as the exact accumulator (q8.h) */
    const uint32x4_t a = vdupq_n_u32((uint32_t)adj[r]);
    int32x4_t v[4];
    for (int q = 0; q < 4; q++)
      v[q] = vreinterpretq_s32_u32(vsubq_u32(
          vaddq_u32(vreinterpretq_u32_s32(acc[r][q]), vreinterpretq_u32_s32(vld1q_s32(g->colterm + c + 4 * q))), a));
    requant_store(v, &g->rq, o, c, n, yr[r] + c);
  }
}

static void gemm_rows(const eb_q8_gemm *g, const int8_t *const *xr, const int32_t *adj, int mr, int pairs2,
                      const out_t *o, int8_t *const *yr) {
  const int blocks = g->ocp / EB_Q8_BLOCK;
  const size_t bstride = (size_t)((g->k + 1) & ~1) * EB_Q8_BLOCK;
  for (int blk = 0; blk < blocks; blk++) {
    const int8_t *w = (const int8_t *)g->w + (size_t)blk * bstride;
    if (pairs2) gemm_tile(g, xr, adj, mr, w, blk * EB_Q8_BLOCK, 1, o, yr);
    else gemm_tile(g, xr, adj, mr, w, blk * EB_Q8_BLOCK, 0, o, yr);
  }
}

void eb_q8_gemm_neon(const eb_q8_gemm *g, size_t rows, const int8_t *x, size_t x_stride, int8_t *y,
                     size_t y_stride) {
  const out_t o = out_load(g->rq.out_zp, g->rq.act_min, g->rq.act_max);
  for (size_t r0 = 0; r0 < rows; r0 += MR) {
    const int mr = rows - r0 < MR ? (int)(rows - r0) : MR;
    const int8_t *xr[MR];
    int8_t *yr[MR];
    int32_t adj[MR];
    for (int r = 0; r < MR; r++) {
      const size_t row = r0 + (size_t)(r < mr ? r : mr - 1);
      xr[r] = x + row * x_stride;
      yr[r] = y + row * y_stride;
      adj[r] = g->rowcoef ? (int32_t)((uint32_t)g->rowcoef * (uint32_t)rowsum(xr[r], g->k)) : 0;
    }
    gemm_rows(g, xr, adj, mr, g->w_no_min, &o, yr);
  }
}

/* ---- depthwise --------------------------------------------------------------------------- */

/* One output pixel, channels [c, c + n), n = 16 but for the last block. The codes (minus
 * in_zp unless inside, where bias_in holds that term) and the int16 weights, both within
 * [-255, 255], multiply in vmlal_s16. */
static inline __attribute__((always_inline)) void dw_block(const eb_q8_dw *d, const int8_t *x, int b, int oy, int ox,
                                                           int c, int n, int inside, const out_t *o, int8_t *y) {
  const eb_conv_geom *g = &d->g;
  const int32_t *bias = (inside ? d->bias_in : d->bias) + c;
  int32x4_t a[4] = {vld1q_s32(bias), vld1q_s32(bias + 4), vld1q_s32(bias + 8), vld1q_s32(bias + 12)};
  const int16x8_t zp = vdupq_n_s16((int16_t)(inside ? 0 : d->in_zp));
  for (int ky = 0; ky < g->kh; ky++) {
    const int iy = oy * g->sh - g->pt + ky * g->dh;
    if (iy < 0 || iy >= g->ih) continue;
    for (int kx = 0; kx < g->kw; kx++) {
      const int ix = ox * g->sw - g->pl + kx * g->dw;
      if (ix < 0 || ix >= g->iw) continue;
      const int8_t *xp = x + (((size_t)b * g->ih + iy) * g->iw + ix) * g->ic + c;
      int8x16_t xv;
      if (n == 16) {
        xv = vld1q_s8(xp);
      } else { /* the last channels: no read past them (their padding lanes have zero weights) */
        int8_t t[16] = {0};
        memcpy(t, xp, (size_t)n);
        xv = vld1q_s8(t);
      }
      const int16_t *wp = d->w16 + (size_t)(ky * g->kw + kx) * d->cp + c;
      const int16x8_t xl = vsubq_s16(vmovl_s8(vget_low_s8(xv)), zp), xh = vsubq_s16(vmovl_s8(vget_high_s8(xv)), zp);
      const int16x8_t wl = vld1q_s16(wp), wh = vld1q_s16(wp + 8);
      a[0] = vmlal_s16(a[0], vget_low_s16(xl), vget_low_s16(wl));
      a[1] = vmlal_s16(a[1], vget_high_s16(xl), vget_high_s16(wl));
      a[2] = vmlal_s16(a[2], vget_low_s16(xh), vget_low_s16(wh));
      a[3] = vmlal_s16(a[3], vget_high_s16(xh), vget_high_s16(wh));
    }
  }
  requant_store(a, &d->rq, o, c, n, y);
}

void eb_q8_dw_rows_neon(const eb_q8_dw *d, const int8_t *x, int8_t *y, int r0, int r1) {
  if (!d->w16) {
    eb_q8_dw_rows_portable(d, x, y, r0, r1);
    return;
  }
  const eb_conv_geom *g = &d->g;
  const out_t o = out_load(d->rq.out_zp, d->rq.act_min, d->rq.act_max);
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
        for (int c = 0; c < full; c += EB_Q8_BLOCK) dw_block(d, x, b, oy, ox, c, EB_Q8_BLOCK, 1, &o, yp + c);
      else
        for (int c = 0; c < full; c += EB_Q8_BLOCK) dw_block(d, x, b, oy, ox, c, EB_Q8_BLOCK, 0, &o, yp + c);
      if (full < g->ic) dw_block(d, x, b, oy, ox, full, g->ic - full, 0, &o, yp + full);
    }
  }
}

/* ---- add (eb_ref_add_i8's arithmetic, 16 lanes at a time) ---------------------------------- */

typedef struct {
  int32x4_t m, l, nr;
} mbqm_t;

static inline mbqm_t mbqm_set(int32_t m, int32_t l, int32_t r) {
  return (mbqm_t){vdupq_n_s32(m), vdupq_n_s32(l), vdupq_n_s32(-r)};
}

/* 8 codes minus their zero point (within [-255, 255]), times 2^20, as two int32 vectors. */
static inline void widen_shift(int8x8_t v, int16x8_t zp, int32x4_t *lo, int32x4_t *hi) {
  const int16x8_t d = vsubq_s16(vmovl_s8(v), zp);
  *lo = vshlq_n_s32(vmovl_s16(vget_low_s16(d)), 20);
  *hi = vshlq_n_s32(vmovl_s16(vget_high_s16(d)), 20);
}

static inline int32x4_t add4(int32x4_t va, int32x4_t vb, const mbqm_t *A, const mbqm_t *B, const mbqm_t *Y) {
  const int32x4_t s = vaddq_s32(mbqm4(va, A->m, A->l, A->nr), mbqm4(vb, B->m, B->l, B->nr));
  return mbqm4(s, Y->m, Y->l, Y->nr);
}

void eb_q8_add_neon(const eb_q8_add *a, size_t count, const int8_t *x, const int8_t *b, int8_t *y) {
  const mbqm_t A = mbqm_set(a->ma, a->la, a->ra), B = mbqm_set(a->mb, a->lb, a->rb), Y = mbqm_set(a->my, a->ly, a->ry);
  const int16x8_t za = vdupq_n_s16((int16_t)a->a_zp), zb = vdupq_n_s16((int16_t)a->b_zp);
  const out_t o = out_load(a->out_zp, a->act_min, a->act_max);
  for (size_t i = 0; i < count; i += 16) {
    const int n = count - i < 16 ? (int)(count - i) : 16;
    int8x16_t xv, bv;
    if (n == 16) {
      xv = vld1q_s8(x + i), bv = vld1q_s8(b + i);
    } else {
      int8_t tx[16] = {0}, tb[16] = {0};
      memcpy(tx, x + i, (size_t)n), memcpy(tb, b + i, (size_t)n);
      xv = vld1q_s8(tx), bv = vld1q_s8(tb);
    }
    int32x4_t xa[4], xb[4], v[4];
    widen_shift(vget_low_s8(xv), za, &xa[0], &xa[1]);
    widen_shift(vget_high_s8(xv), za, &xa[2], &xa[3]);
    widen_shift(vget_low_s8(bv), zb, &xb[0], &xb[1]);
    widen_shift(vget_high_s8(bv), zb, &xb[2], &xb[3]);
    for (int q = 0; q < 4; q++) v[q] = add4(xa[q], xb[q], &A, &B, &Y);
    store_n(y + i, narrow16(v[0], v[1], v[2], v[3], &o), n);
  }
}

/* ---- quantize (aarch64: eb_ref_quantize_i8's arithmetic; see q8.h) ----------------------- */
#if defined(__aarch64__)
void eb_q8_quantize_neon(size_t count, const float *x, float scale, int32_t zp, int8_t *y) {
  const float32x4_t s = vdupq_n_f32(scale), lim = vdupq_n_f32(512.0f), nlim = vdupq_n_f32(-512.0f);
  const float32x4_t half = vdupq_n_f32(0.5f), nhalf = vdupq_n_f32(-0.5f);
  const int32x4_t z = vdupq_n_s32(zp);
  const out_t o = out_load(0, -128, 127);
  for (size_t i = 0; i < count; i += 16) {
    const int n = count - i < 16 ? (int)(count - i) : 16;
    float t[16] = {0};
    const float *p = x + i;
    if (n < 16) memcpy(t, p, sizeof(float) * (size_t)n), p = t;
    int32x4_t v[4];
    for (int q = 0; q < 4; q++) {
      float32x4_t r = vdivq_f32(vld1q_f32(p + 4 * q), s); /* IEEE division, as the scalar one */
      r = vbslq_f32(vceqq_f32(r, r), r, vdupq_n_f32(0.0f)); /* NaN quantizes like 0 */
      r = vmaxq_f32(vminq_f32(r, lim), nlim);
      int32x4_t ti = vcvtq_s32_f32(r); /* truncation toward zero */
      const float32x4_t f = vsubq_f32(r, vcvtq_f32_s32(ti)); /* exact */
      /* masks are -1 where true: t += (f >= 0.5) - (f <= -0.5) */
      ti = vsubq_s32(ti, vreinterpretq_s32_u32(vcgeq_f32(f, half)));
      ti = vaddq_s32(ti, vreinterpretq_s32_u32(vcleq_f32(f, nhalf)));
      v[q] = vaddq_s32(ti, z); /* |ti| <= 512: no overflow; the narrows clamp */
    }
    store_n(y + i, narrow16(v[0], v[1], v[2], v[3], &o), n);
  }
}
#endif
