/*
 * Body of the fast binary kernels (contracts in kernels.h), written once over a
 * handful of vector operations that each ISA file defines before including it:
 *
 *   EB_ISA(name)       symbol prefix, e.g. eb_avx512_##name
 *   EB_VL              64-bit lanes per vector (1 scalar, 2 NEON, 4 AVX2, 8 AVX-512)
 *   EB_OB, EB_P        register tile: EB_OB blocks of 8 output channels x EB_P pixels
 *   eb_vd, eb_va       data vector (EB_VL words) and popcount accumulator
 *   EB_VA_ZERO()       zero accumulator
 *   EB_VD_LOAD(p)      EB_VL words from p (unaligned)
 *   EB_VD_BCAST(u)     one word in every lane
 *   EB_VA_XOR(a,x,w)   a + popcount(x ^ w) per lane;  EB_VA_AND(a,x,w): x & w
 *   EB_VA_FLUSH(a,dst) dst[0..EB_VL) += the lane counts (uint32)
 *   EB_MAX_STEPS       words an accumulator can take before it must be flushed
 * and, optionally, for an ISA without a vector popcount instruction (AVX2, AVX-512BW:
 * a nibble lookup per byte), byte counters that put off the horizontal byte sum:
 *   eb_vb              byte counters, one per byte of a data vector
 *   EB_VB_STEPS        steps a byte counter takes before it must be folded (each step
 *                      adds at most 8 to a byte: 31 steps <= 248 fit in 8 bits)
 *   EB_VB_ZERO()       zero byte counters
 *   EB_VD_HI(v)        the form of a data vector EB_VB_XOR wants for its high nibbles
 *                      (v >> 4, or v itself), made once per loaded vector, not per xor
 *   EB_VB_XOR(b,x,xh,w,wh)  b + per-byte popcount(x ^ w), xh/wh = EB_VD_HI(x/w);
 *                      EB_VB_AND likewise for x & w
 *   EB_VA_ADDB(a,b)    a + the sum of the bytes of each 64-bit lane of b (vpsadbw)
 * and optionally EB_FMAX64(taps, nt, c0, y): 64 channels of a float max pool window
 * (maxpool_f32_tile) in registers, and EB_PACK64(x, thr) / EB_BITS64(acc, thr, dir) for one full
 * output word of SIGN_PACK / the thresholded output stage, and
 *   EB_VA_GT(a,lim)    bit i set where lane i of a > lane i of lim (signed 64-bit),
 * which lets a conv with a packed-bits output threshold its accumulators in
 * registers (conv_tile); without it (armv7) the output stage reads them back
 * from a small per-block array. Optionally too,
 *   EB_F32_EPI(a, e, p, j) the float output stage of accumulator a (pixel p, vector j)
 *                      in registers, from the constants in *e (EB_ISA(f32_stage) below):
 *                      stores the floats and returns the sign bits of its EB_VL channels,
 * which lets a conv with a float output (and a fused residual ADD / SIGN_PACK) skip
 * the flush to memory as well; EB_F32_EPI2(a0, a1, e, p, j), optional, the same for
 * accumulators j and j+1 together.
 *
 * The micro-kernel: lanes run along output channels (bpack.h layout), so each
 * input word is broadcast once and xor-ed with EB_OB*8 channels' words, and
 * each weight vector is reused by EB_P pixels: EB_P*EB_OB*8/EB_VL independent
 * accumulator chains per step, no horizontal sums. Pixels reach their taps
 * through pointers (an indirect convolution): a tap in the padding points at
 * the packed zero words, so borders run the same inner loop as the interior
 * and zero padding is an exact correction after it (wsum).
 * The output stage (packed bits, float, or raw int32) follows each register
 * tile at once, so a layer never writes and rereads an int32 array.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

/* The float output stage must round m*acc and + b separately, as ref does
 * (ref_binary.c): no FMA contraction, which clang would do by default. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define EB_NV (8 / EB_VL)
#define EB_NW (EB_OB * EB_NV)
#define EB_OG (EB_OB * 8)   /* output channels per register tile */
#define EB_TAPCHUNK 64      /* taps whose pointers are built at a time */
#define EB_LIMCACHE 16      /* border classes whose output limits are kept per channel group */

#if defined(__GNUC__) && !defined(__clang__)
#define EB_UNROLL _Pragma("GCC unroll 48")
#elif defined(__clang__)
#define EB_UNROLL _Pragma("unroll")
#else
#define EB_UNROLL
#endif
#if defined(__GNUC__) || defined(__clang__)
#define EB_INLINE static inline __attribute__((always_inline))
#else
#define EB_INLINE static inline
#endif

static inline int EB_ISA(pc64)(uint64_t v) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_popcountll((unsigned long long)v);
#else
  v = v - ((v >> 1) & UINT64_C(0x5555555555555555));
  v = (v & UINT64_C(0x3333333333333333)) + ((v >> 2) & UINT64_C(0x3333333333333333));
  v = (v + (v >> 4)) & UINT64_C(0x0f0f0f0f0f0f0f0f);
  return (int)((v * UINT64_C(0x0101010101010101)) >> 56);
#endif
}

/* Float output stage of one register tile (EB_F32_EPI): per pixel its output, residual
 * (NULL: none) and padding correction (wsum of its padding taps, 0 inside); per group
 * the channel constants, EB_OG wide (kernels.h's eb_bin_out has their meaning). Lanes
 * at or past `on` are neither read nor written and give 0 sign bits. */
typedef struct {
  float *y[EB_P];
  const float *res[EB_P];
  const int32_t *corr[EB_P];
  const float *m, *b, *t, *s2, *b2;
  float lo, hi, rlo, rhi, clo, chi, alo, ahi;
  int32_t full;
  int on, post;
} EB_ISA(f32_stage);

/* The micro-kernel step: word k of every pixel against the EB_OG channels' word k. */
#define EB_STEP(k)                                                                                            \
  do {                                                                                                        \
    eb_vd w[EB_NW];                                                                                           \
    EB_UNROLL for (int j = 0; j < EB_NW; ++j)                                                                 \
      w[j] = EB_VD_LOAD(wt + (size_t)(j / EB_NV) * bstride + (k) * 8 + (size_t)(j % EB_NV) * EB_VL);          \
    EB_UNROLL for (int p = 0; p < P; ++p) {                                                                   \
      const eb_vd b = EB_VD_BCAST(xp[p][k]);                                                                  \
      EB_UNROLL for (int j = 0; j < EB_NW; ++j) acc[p][j] = and_op ? EB_VA_AND(acc[p][j], b, w[j])            \
                                                                    : EB_VA_XOR(acc[p][j], b, w[j]);          \
    }                                                                                                         \
  } while (0)

#if defined(EB_VB_STEPS)
/* EB_STEP on byte counters: the high-nibble forms of the weights are made once per
 * step and those of an input word once per pixel, each reused by the whole row or
 * column of the register tile. */
#define EB_STEPB(k)                                                                                           \
  do {                                                                                                        \
    eb_vd w[EB_NW], wh[EB_NW];                                                                                \
    EB_UNROLL for (int j = 0; j < EB_NW; ++j) {                                                               \
      w[j] = EB_VD_LOAD(wt + (size_t)(j / EB_NV) * bstride + (k) * 8 + (size_t)(j % EB_NV) * EB_VL);          \
      wh[j] = EB_VD_HI(w[j]);                                                                                 \
    }                                                                                                         \
    EB_UNROLL for (int p = 0; p < P; ++p) {                                                                   \
      const eb_vd b = EB_VD_BCAST(xp[p][k]), bh = EB_VD_HI(b);                                                \
      EB_UNROLL for (int j = 0; j < EB_NW; ++j) bacc[p][j] = and_op                                           \
                                                   ? EB_VB_AND(bacc[p][j], b, bh, w[j], wh[j])                \
                                                   : EB_VB_XOR(bacc[p][j], b, bh, w[j], wh[j]);               \
    }                                                                                                         \
  } while (0)

/* The tap pointers of tap t (as EB_ISA(core) reads them). */
#define EB_TAP_XP(t)                                                                                          \
  const uint64_t *wt = wb + (size_t)(t) * wpr * 8;                                                            \
  const uint64_t *xp[EB_P];                                                                                   \
  if (ptrs) {                                                                                                 \
    EB_UNROLL for (int p = 0; p < P; ++p) xp[p] = ptrs[(t) * EB_P + p];                                       \
  } else {                                                                                                    \
    EB_UNROLL for (int p = 0; p < P; ++p) xp[p] = base + (size_t)(t) * tstep + (size_t)p * pstep;             \
  }

/* The counting loop of EB_ISA(core) on byte counters: acc = the 64-bit lane counts.
 * shortk (nt*wpr <= EB_VB_STEPS, checked by the caller): one vpsadbw per counter at the
 * end and no 64-bit accumulators during the loop (the register tile is half the size);
 * else the byte counters are folded into acc every EB_VB_STEPS steps, so no byte ever
 * holds more than 8*EB_VB_STEPS < 256 and the sums are exact. */
EB_INLINE void EB_ISA(count_bytes)(const int P, const int and_op, const int shortk, int nt, size_t wpr,
                                   const uint64_t *const *ptrs, const uint64_t *base, size_t tstep, size_t pstep,
                                   const uint64_t *wb, size_t bstride, eb_va (*acc)[EB_NW]) {
  eb_vb bacc[EB_P][EB_NW];
  EB_UNROLL for (int p = 0; p < P; ++p) EB_UNROLL for (int j = 0; j < EB_NW; ++j) bacc[p][j] = EB_VB_ZERO();
  if (shortk) {
    for (int t = 0; t < nt; ++t) {
      EB_TAP_XP(t)
      for (size_t k = 0; k < wpr; ++k) EB_STEPB(k);
    }
    EB_UNROLL for (int p = 0; p < P; ++p) EB_UNROLL for (int j = 0; j < EB_NW; ++j)
      acc[p][j] = EB_VA_ADDB(EB_VA_ZERO(), bacc[p][j]);
    return;
  }
  EB_UNROLL for (int p = 0; p < P; ++p) EB_UNROLL for (int j = 0; j < EB_NW; ++j) acc[p][j] = EB_VA_ZERO();
  size_t used = 0;
  for (int t = 0; t < nt; ++t) {
    EB_TAP_XP(t)
    size_t k = 0;
    while (k < wpr) {
      if (used == (size_t)EB_VB_STEPS) {
        EB_UNROLL for (int p = 0; p < P; ++p) EB_UNROLL for (int j = 0; j < EB_NW; ++j) {
          acc[p][j] = EB_VA_ADDB(acc[p][j], bacc[p][j]);
          bacc[p][j] = EB_VB_ZERO();
        }
        used = 0;
      }
      const size_t room = (size_t)EB_VB_STEPS - used;
      const size_t end = wpr - k > room ? k + room : wpr;
      used += end - k;
      for (; k < end; ++k) EB_STEPB(k);
    }
  }
  EB_UNROLL for (int p = 0; p < P; ++p) EB_UNROLL for (int j = 0; j < EB_NW; ++j)
    acc[p][j] = EB_VA_ADDB(acc[p][j], bacc[p][j]);
}
#endif

/* cnt[p][j] += sum over taps t < nt and words k of popcount(op(ptrs[t][p][k], w)),
 * w the EB_OG channels' word k of tap t. P, and_op and fuse are constants at
 * every call, so the accumulator array lives in registers.
 * fuse (xor, EB_VA_GT defined, nt*wpr <= EB_MAX_STEPS): instead of flushing,
 * obits[p] = the pixel's EB_OG thresholded output bits straight from the
 * registers: bit c = (cnt_c > lim[p][c]) ^ (bit c of neg) (see conv_tile). */
/* ptrs NULL: tap t of pixel p is at base + t*tstep + p*pstep (a block inside the
 * input, no pointer array to build and read back). */
EB_INLINE void EB_ISA(core)(const int P, const int and_op, const int fuse, const int shortk, int nt, size_t wpr,
                            const uint64_t *const *ptrs, const uint64_t *base, size_t tstep, size_t pstep,
                            const uint64_t *wb, size_t bstride, uint32_t (*cnt)[EB_OG],
                            const uint64_t *const *lim, uint32_t neg, uint32_t *obits,
                            const EB_ISA(f32_stage) *fe) {
  eb_va acc[EB_P][EB_NW];
#if defined(EB_VB_STEPS)
  EB_ISA(count_bytes)(P, and_op, shortk, nt, wpr, ptrs, base, tstep, pstep, wb, bstride, acc);
#else
  (void)shortk;
  EB_UNROLL for (int p = 0; p < P; ++p) EB_UNROLL for (int j = 0; j < EB_NW; ++j) acc[p][j] = EB_VA_ZERO();
  size_t used = 0;
  for (int t = 0; t < nt; ++t) {
    const uint64_t *wt = wb + (size_t)t * wpr * 8;
    const uint64_t *xp[EB_P];
    if (ptrs) {
      EB_UNROLL for (int p = 0; p < P; ++p) xp[p] = ptrs[t * EB_P + p];
    } else {
      EB_UNROLL for (int p = 0; p < P; ++p) xp[p] = base + (size_t)t * tstep + (size_t)p * pstep;
    }
    if (fuse || (size_t)EB_MAX_STEPS >= ((size_t)1 << 24)) {
      /* 64-bit lanes (or a fused call, whose caller checked nt*wpr): no spills, a plain loop */
      for (size_t k = 0; k < wpr; ++k) EB_STEP(k);
      continue;
    }
    size_t k = 0;
    while (k < wpr) {
      if (used == (size_t)EB_MAX_STEPS) { /* narrow accumulators (NEON): spill before they overflow */
        EB_UNROLL for (int p = 0; p < P; ++p) EB_UNROLL for (int j = 0; j < EB_NW; ++j) {
          EB_VA_FLUSH(acc[p][j], &cnt[p][j * EB_VL]);
          acc[p][j] = EB_VA_ZERO();
        }
        used = 0;
      }
      const size_t room = (size_t)EB_MAX_STEPS - used;
      const size_t end = wpr - k > room ? k + room : wpr;
      used += end - k;
      for (; k < end; ++k) EB_STEP(k);
    }
  }
#endif
#if defined(EB_F32_EPI)
  if (fuse == 2) { /* float output: stored from the registers, sign bits returned */
    /* a local copy: the float stores cannot alias it, so its fields stay in registers */
    const EB_ISA(f32_stage) e = *fe;
    EB_UNROLL for (int p = 0; p < P; ++p) {
      uint32_t o = 0;
#if defined(EB_F32_EPI2)
      /* two accumulators per call where the ISA has a double-width float stage */
      EB_UNROLL for (int j = 0; j + 1 < EB_NW; j += 2)
        o |= (uint32_t)EB_F32_EPI2(acc[p][j], acc[p][j + 1], &e, p, j) << (unsigned)(j * EB_VL);
      if (EB_NW % 2) o |= (uint32_t)EB_F32_EPI(acc[p][EB_NW - 1], &e, p, EB_NW - 1) << (unsigned)((EB_NW - 1) * EB_VL);
#else
      EB_UNROLL for (int j = 0; j < EB_NW; ++j) o |= (uint32_t)EB_F32_EPI(acc[p][j], &e, p, j) << (unsigned)(j * EB_VL);
#endif
      obits[p] = o;
    }
    return;
  }
#else
  (void)fe;
#endif
#if defined(EB_VA_GT)
  if (fuse == 1) {
    EB_UNROLL for (int p = 0; p < P; ++p) {
      uint32_t o = 0;
      EB_UNROLL for (int j = 0; j < EB_NW; ++j)
        o |= (uint32_t)EB_VA_GT(acc[p][j], EB_VD_LOAD(lim[p] + j * EB_VL)) << (unsigned)(j * EB_VL);
      obits[p] = o ^ neg;
    }
    return;
  }
#else
  (void)lim, (void)neg, (void)obits;
#endif
  EB_UNROLL for (int p = 0; p < P; ++p) EB_UNROLL for (int j = 0; j < EB_NW; ++j)
    EB_VA_FLUSH(acc[p][j], &cnt[p][j * EB_VL]);
}

/* One core instantiation; byte-counting ISAs have a second one for short reductions. */
#if defined(EB_VB_STEPS)
#define EB_CORE_CALL(n, a, f)                                                                                 \
  do {                                                                                                        \
    if ((size_t)nt * wpr <= (size_t)EB_VB_STEPS)                                                              \
      EB_ISA(core)(n, a, f, 1, nt, wpr, ptrs, base, tstep, pstep, wb, bstride, cnt, lim, neg, obits, fe);     \
    else                                                                                                      \
      EB_ISA(core)(n, a, f, 0, nt, wpr, ptrs, base, tstep, pstep, wb, bstride, cnt, lim, neg, obits, fe);     \
  } while (0)
#else
#define EB_CORE_CALL(n, a, f)                                                                                 \
  EB_ISA(core)(n, a, f, 0, nt, wpr, ptrs, base, tstep, pstep, wb, bstride, cnt, lim, neg, obits, fe)
#endif
#if defined(EB_VA_GT)
#define EB_CORE_FUSED(n)                                                                                      \
  if (fuse == 1) {                                                                                            \
    EB_CORE_CALL(n, 0, 1);                                                                                    \
    break;                                                                                                    \
  }
#else
#define EB_CORE_FUSED(n)
#endif
#if defined(EB_F32_EPI)
#define EB_CORE_FUSED_F32(n)                                                                                  \
  if (fuse == 2) {                                                                                            \
    EB_CORE_CALL(n, 0, 2);                                                                                    \
    break;                                                                                                    \
  }
#else
#define EB_CORE_FUSED_F32(n)
#endif
#define EB_CORE_CASE(n)                                                                                       \
  case n:                                                                                                     \
    EB_CORE_FUSED(n)                                                                                          \
    EB_CORE_FUSED_F32(n)                                                                                      \
    if (and_op) EB_CORE_CALL(n, 1, 0);                                                                        \
    else EB_CORE_CALL(n, 0, 0);                                                                               \
    break;

/* One instantiation per pixel count, so a row's last few pixels cost only their share. */
static void EB_ISA(core_n)(int P, int and_op, int fuse, int nt, size_t wpr, const uint64_t *const *ptrs,
                           const uint64_t *base, size_t tstep, size_t pstep, const uint64_t *wb, size_t bstride,
                           uint32_t (*cnt)[EB_OG], const uint64_t *const *lim, uint32_t neg, uint32_t *obits,
                           const EB_ISA(f32_stage) *fe) {
  (void)fuse;
  switch (P) {
    EB_CORE_CASE(1)
#if EB_P >= 2
    EB_CORE_CASE(2)
#endif
#if EB_P >= 3
    EB_CORE_CASE(3)
#endif
#if EB_P >= 4
    EB_CORE_CASE(4)
#endif
#if EB_P >= 5
    EB_CORE_CASE(5)
#endif
#if EB_P >= 6
    EB_CORE_CASE(6)
#endif
#if EB_P >= 7
#error "EB_P > 6 needs more cases"
#endif
    default: break;
  }
}

/* Tap pointers for pixels ox0..ox0+P-1 of row (n, oy), taps t0..t0+nt-1, plane
 * offset `off` words: the input pixel's words, or the zero words when the tap
 * falls in the padding. */
static void EB_ISA(tap_ptrs)(const eb_conv_geom *g, const uint64_t *x, size_t xps, size_t off, const uint64_t *zero,
                             int n, int oy, int ox0, int P, int t0, int nt, const uint64_t **ptrs) {
  int ky = t0 / g->kw, kx = t0 % g->kw; /* stepped, not divided, per tap */
  for (int t = t0; t < t0 + nt; ++t) {
    const int iy = oy * g->sh - g->pt + ky * g->dh;
    const int rin = iy >= 0 && iy < g->ih;
    const uint64_t *rowp = x + ((size_t)n * (size_t)g->ih + (size_t)(rin ? iy : 0)) * (size_t)g->iw * xps + off;
    const uint64_t **tp = ptrs + (size_t)(t - t0) * EB_P;
    for (int p = 0; p < P; ++p) {
      const int ix = (ox0 + p) * g->sw - g->pl + kx * g->dw;
      tp[p] = rin && ix >= 0 && ix < g->iw ? rowp + (size_t)ix * xps : zero;
    }
    if (++kx == g->kw) kx = 0, ++ky;
  }
}

/* Interior output range along one axis: [lo, hi) have their whole window inside. */
static void EB_ISA(interior)(int out, int in, int stride, int pad, int span, int *lo, int *hi) {
  const int a = (pad + stride - 1) / stride; /* o*stride - pad >= 0 */
  const int room = in + pad - span;          /* o*stride - pad + span <= in */
  const int b = room < 0 ? 0 : room / stride + 1;
  *lo = a < out ? a : out;
  *hi = b < out ? b : out;
}

/* tap_ptrs for a block whose every window lies inside the input: no checks. */
static void EB_ISA(tap_ptrs_inside)(const eb_conv_geom *g, const uint64_t *x, size_t xps, size_t off, int n, int oy,
                                    int ox0, int P, int t0, int nt, const uint64_t **ptrs) {
  const uint64_t *base = x + (((size_t)n * (size_t)g->ih + (size_t)(oy * g->sh - g->pt)) * (size_t)g->iw +
                              (size_t)(ox0 * g->sw - g->pl)) * xps + off;
  const size_t pstep = (size_t)g->sw * xps;
  for (int t = t0; t < t0 + nt; ++t) {
    const int ky = t / g->kw, kx = t % g->kw;
    const uint64_t *tb = base + ((size_t)ky * (size_t)g->dh * (size_t)g->iw + (size_t)kx * (size_t)g->dw) * xps;
    const uint64_t **tp = ptrs + (size_t)(t - t0) * EB_P;
    for (int p = 0; p < P; ++p) tp[p] = tb + (size_t)p * pstep;
  }
}

/* The padding class of a border pixel: which window rows and which window columns
 * fall in the padding (bit ky of the high half, bit kx of the low half; kh, kw <= 32,
 * EB_KEYED). Pixels of one class have the same padding taps, so the same correction.
 * The row half is made once per output row, the column half per pixel. */
#define EB_KEYED(g) ((g)->kh <= 32 && (g)->kw <= 32)
static uint64_t EB_ISA(pad_key_row)(const eb_conv_geom *g, int oy) {
  uint64_t m = 0;
  for (int ky = 0; ky < g->kh; ++ky) {
    const int iy = oy * g->sh - g->pt + ky * g->dh;
    m |= (uint64_t)(iy < 0 || iy >= g->ih) << (unsigned)(32 + ky);
  }
  return m;
}

static uint64_t EB_ISA(pad_key)(const eb_conv_geom *g, uint64_t row_key, int ox) {
  uint64_t m = row_key;
  for (int kx = 0; kx < g->kw; ++kx) {
    const int ix = ox * g->sw - g->pl + kx * g->dw;
    m |= (uint64_t)(ix < 0 || ix >= g->iw) << (unsigned)kx;
  }
  return m;
}

static int EB_ISA(tap_inside)(const eb_conv_geom *g, int oy, int ox, int t) {
  const int iy = oy * g->sh - g->pt + (t / g->kw) * g->dh, ix = ox * g->sw - g->pl + (t % g->kw) * g->dw;
  return iy >= 0 && iy < g->ih && ix >= 0 && ix < g->iw;
}

/* dst[c] += sign * wsum of channel og + c, c < on, over the taps of output pixel (oy, ox)
 * in the padding: the zero-padding correction (window rows and columns stepped, no
 * division per tap). */
static void EB_ISA(pad_corr)(const eb_conv_geom *g, const eb_bpack_view *pv, int oy, int ox, int og, int on,
                             int32_t sign, int32_t *dst) {
  for (int ky = 0, t = 0; ky < g->kh; ++ky) {
    const int iy = oy * g->sh - g->pt + ky * g->dh, rin = iy >= 0 && iy < g->ih;
    for (int kx = 0; kx < g->kw; ++kx, ++t) {
      const int ix = ox * g->sw - g->pl + kx * g->dw;
      if (rin && ix >= 0 && ix < g->iw) continue;
      const int32_t *ws = pv->wsum + (size_t)t * (size_t)pv->ocp + (size_t)og;
      for (int c = 0; c < on; ++c) dst[c] += sign * ws[c];
    }
  }
}

/* Popcount of plane words (at off) of input pixel (n, iy, ix), over the taps inside. */
static int32_t EB_ISA(plane_ones)(const eb_conv_geom *g, const uint64_t *x, size_t xps, size_t off, size_t wpr, int n,
                                  int oy, int ox) {
  int32_t s = 0;
  const int taps = g->kh * g->kw;
  for (int t = 0; t < taps; ++t) {
    if (!EB_ISA(tap_inside)(g, oy, ox, t)) continue;
    const int iy = oy * g->sh - g->pt + (t / g->kw) * g->dh, ix = ox * g->sw - g->pl + (t % g->kw) * g->dw;
    const uint64_t *xp = x + (((size_t)n * (size_t)g->ih + (size_t)iy) * (size_t)g->iw + (size_t)ix) * xps + off;
    for (size_t k = 0; k < wpr; ++k) s += EB_ISA(pc64)(xp[k]);
  }
  return s;
}

static float EB_ISA(clampf)(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* Output stage of channels [og, og+on) of output pixel pix from their
 * accumulators, by the expressions of eb_ref_acc_to_bits / eb_ref_acc_to_f32
 * (no FMA contraction, as in ref: see the pragma above). Channel tiles of a bits
 * output start at a multiple of 64, so the first group of a word sets it. */
static void EB_ISA(emit)(const eb_bin_out *out, int oc, size_t pix, int og, int on, const int32_t *tot) {
  if (out->bits) {
    uint64_t *wp = out->bits + pix * eb_words((size_t)oc) + (size_t)og / 64;
    const unsigned sh = (unsigned)(og % 64);
    uint64_t word = 0;
    for (int c = 0; c < on; ++c) {
      const int32_t a = tot[c], t = out->thr[og + c], d = out->dir[og + c];
      word |= (uint64_t)((d > 0 && a < t) || (d < 0 && a > t)) << (unsigned)c;
    }
    *wp = sh ? *wp | word << sh : word;
  } else if (out->f32) {
    float *yp = out->f32 + pix * (size_t)oc + (size_t)og;
    for (int c = 0; c < on; ++c) {
      const float m = out->mult ? out->mult[og + c] : 1.0f, b = out->bias ? out->bias[og + c] : 0.0f;
      yp[c] = EB_ISA(clampf)(m * (float)tot[c] + b, out->out_min, out->out_max);
    }
  } else {
    memcpy(out->acc + pix * (size_t)oc + (size_t)og, tot, (size_t)on * sizeof(int32_t));
  }
}

/* A float output's per-channel constants for one group of EB_OG channels, laid out
 * so that a whole group is one fixed-width loop (vectorized); past `on`: harmless. */
typedef struct {
  float m[EB_OG], b[EB_OG], t[EB_OG], s2[EB_OG], b2[EB_OG];
} EB_ISA(f32_group);

static void EB_ISA(f32_group_of)(const eb_bin_out *out, int og, int on, EB_ISA(f32_group) *gp) {
  for (int c = 0; c < EB_OG; ++c) {
    gp->m[c] = c < on && out->mult ? out->mult[og + c] : 1.0f;
    gp->b[c] = c < on && out->bias ? out->bias[og + c] : 0.0f;
    gp->t[c] = c < on && out->sthr ? out->sthr[og + c] : 0.0f;
    gp->s2[c] = c < on && out->scale ? out->scale[og + c] : 1.0f;
    gp->b2[c] = c < on && out->shift ? out->shift[og + c] : 0.0f;
  }
}

/* The float output stage of one pixel's channels [og, og+on), with the residual and
 * the signs of the sum when *out asks: the expressions of eb_ref_acc_to_f32, then
 * eb_ref_add_f32, then eb_ref_pack_f32, each rounded as there (no contraction). */
static void EB_ISA(emit_f32)(const eb_bin_out *out, int oc, size_t pix, int og, int on, const int32_t *tot,
                             const EB_ISA(f32_group) *gp) {
  float *yp = out->f32 + pix * (size_t)oc + (size_t)og;
  const float *rp = out->res ? out->res + pix * (size_t)oc + (size_t)og : NULL;
  const float lo = out->out_min, hi = out->out_max, rlo = out->res_min, rhi = out->res_max;
  const int clamp2 = out->post & EB_POST_CLAMP, affine = out->post & EB_POST_AFFINE;
  uint64_t word = 0;
  if (on == EB_OG) { /* fixed trip counts: the compiler vectorizes each loop */
    float v[EB_OG];
    for (int c = 0; c < EB_OG; ++c) v[c] = EB_ISA(clampf)(gp->m[c] * (float)tot[c] + gp->b[c], lo, hi);
    if (clamp2)
      for (int c = 0; c < EB_OG; ++c) v[c] = EB_ISA(clampf)(v[c], out->clamp_lo, out->clamp_hi);
    if (affine)
      for (int c = 0; c < EB_OG; ++c) v[c] = EB_ISA(clampf)(v[c] * gp->s2[c] + gp->b2[c], out->aff_lo, out->aff_hi);
    if (rp)
      for (int c = 0; c < EB_OG; ++c) v[c] = EB_ISA(clampf)(v[c] + rp[c], rlo, rhi);
    memcpy(yp, v, sizeof v);
    if (!out->sbits) return;
    uint32_t w = 0;
    for (int c = 0; c < EB_OG; ++c) w |= (uint32_t)(v[c] < gp->t[c]) << (unsigned)c;
    word = w;
  } else {
    for (int c = 0; c < on; ++c) {
      float v = EB_ISA(clampf)(gp->m[c] * (float)tot[c] + gp->b[c], lo, hi);
      if (clamp2) v = EB_ISA(clampf)(v, out->clamp_lo, out->clamp_hi);
      if (affine) v = EB_ISA(clampf)(v * gp->s2[c] + gp->b2[c], out->aff_lo, out->aff_hi);
      if (rp) v = EB_ISA(clampf)(v + rp[c], rlo, rhi);
      yp[c] = v;
      word |= (uint64_t)(v < gp->t[c]) << (unsigned)c;
    }
    if (!out->sbits) return;
  }
  uint64_t *wp = out->sbits + pix * eb_words((size_t)oc) + (size_t)og / 64;
  const unsigned sh = (unsigned)(og % 64);
  *wp = sh ? *wp | word << sh : word;
}

static int64_t EB_ISA(floor_half)(int64_t v) { return v >= 0 ? v / 2 : -((1 - v) / 2); }

/* Fused bits output (xor conv): channel c of a pixel is set iff
 * (d > 0 && acc < t) || (d < 0 && acc > t), with acc = full - 2*cnt - corr (cnt
 * the mismatch count, corr the wsum of the pixel's padding taps when pad_value
 * is 0). With R = full - corr - t: d > 0 is 2*cnt > R, i.e. cnt > floor(R/2);
 * d < 0 is 2*cnt < R, i.e. NOT cnt > ceil(R/2) - 1. So bit c = (cnt > lim_c) ^ neg_c:
 * one signed compare per lane on the accumulator registers, then one xor per
 * EB_OG channels. d == 0 and channels past on get lim = INT64_MAX (never set).
 * corr: NULL for a pixel without padding taps. */
static void EB_ISA(bit_limits)(const eb_bin_out *out, int og, int on, int32_t full, const int32_t *corr,
                               uint64_t *lim) {
  for (int c = 0; c < EB_OG; ++c) {
    const int32_t d = c < on ? out->dir[og + c] : 0;
    const int64_t r = (int64_t)full - (corr ? corr[c] : 0) - (c < on ? out->thr[og + c] : 0);
    const int64_t l = d > 0 ? EB_ISA(floor_half)(r) : d < 0 ? -EB_ISA(floor_half)(-r) - 1 : INT64_MAX;
    lim[c] = (uint64_t)l;
  }
}

/* Input words a conv tile may copy to its stack: a zero-padded copy of the rows it reads. */
#define EB_PADBUF 4096

/* Small maps (BinaryNet's 14x14, Bi-Real's last stages) have many border pixels, and
 * each border block needs a tap pointer per tap and pixel, or runs short (blocks stop at
 * the interior's edges). On a zero-padded copy of the input rows every block is an
 * interior block of full width: one copy per chunk of rows instead. The zero words are
 * what the border taps read anyway (pv.zero), so the padding corrections are unchanged.
 * Copies the input rows that output rows [r, r1) of one image read (as many as fit
 * buf) and sets *gp to the geometry of the copy (one image; oy*sh - gp->pt is the
 * copy's row, ox*sw its column) and *rend to the end of the rows it covers; returns 0
 * (nothing copied) when one output row's window rows do not fit. */
static int EB_ISA(pad_copy)(const eb_conv_geom *g, const uint64_t *x, size_t xps, int r, int r1, uint64_t *buf,
                            eb_conv_geom *gp, int *rend) {
  const int span_h = (g->kh - 1) * g->dh + 1, span_w = (g->kw - 1) * g->dw + 1;
  const int n = r / g->oh, oy0 = r % g->oh;
  const size_t pw = (size_t)(g->ow - 1) * (size_t)g->sw + (size_t)span_w, row_words = pw * xps;
  const size_t fit = (size_t)EB_PADBUF / row_words; /* input rows that fit */
  if (fit < (size_t)span_h) return 0;
  int rows = (int)(((fit - (size_t)span_h) / (size_t)g->sh) + 1);
  if (rows > r1 - r) rows = r1 - r;
  if (rows > g->oh - oy0) rows = g->oh - oy0; /* one image */
  const int ph = (rows - 1) * g->sh + span_h, iy0 = oy0 * g->sh - g->pt;
  /* input columns up to the last one a window reads: no further (a grouped conv runs as
   * a wider image whose last group ends before the row does, bin_ops.c) */
  int ncopy = 0;
  for (int kx = 0; kx < g->kw; ++kx) {
    const int last = g->iw - 1 + g->pl - kx * g->dw; /* ox*sw <= last: ix <= iw - 1 */
    if (last < 0) continue;
    const int ox = last / g->sw < g->ow - 1 ? last / g->sw : g->ow - 1;
    const int ix = ox * g->sw - g->pl + kx * g->dw;
    if (ix + 1 > ncopy) ncopy = ix + 1;
  }
  for (int br = 0; br < ph; ++br) {
    uint64_t *dst = buf + (size_t)br * row_words;
    const int iy = iy0 + br;
    if (iy < 0 || iy >= g->ih || ncopy <= 0) {
      memset(dst, 0, row_words * sizeof(uint64_t));
      continue;
    }
    const size_t left = (size_t)g->pl * xps, mid = (size_t)ncopy * xps;
    memset(dst, 0, left * sizeof(uint64_t));
    memcpy(dst + left, x + ((size_t)n * (size_t)g->ih + (size_t)iy) * (size_t)g->iw * xps, mid * sizeof(uint64_t));
    memset(dst + left + mid, 0, (row_words - left - mid) * sizeof(uint64_t));
  }
  *gp = *g;
  gp->n = 1, gp->ih = ph, gp->iw = (int)pw, gp->pt = oy0 * g->sh, gp->pl = 0;
  *rend = r + rows;
  return 1;
}

/* Shared by the xor conv (bits == 0) and the K-bit conv (bits planes, and-popcount).
 * A bits output of the xor conv is fused (bit_limits): no flush, no int32 array,
 * one store per output word. */
static void EB_ISA(conv_tile)(const eb_conv_geom *g, int pad_value, int bits, const uint64_t *x, const void *packed,
                              const eb_bin_out *out, int r0, int r1, int oc0, int oc1) {
  const int taps = g->kh * g->kw, planes = bits ? bits : 1;
  const eb_bpack_view pv = eb_bpack_view_of(packed, g->oc, taps, g->ic, planes);
  const size_t wpr = pv.wpr, xps = (size_t)planes * wpr, owords = eb_words((size_t)g->oc);
  const int32_t full = taps * g->ic;
  const uint64_t *ptrs[EB_TAPCHUNK * EB_P];
  uint32_t cnt[EB_P][EB_OG];
  int32_t tot[EB_P][EB_OG];
  uint32_t obits[EB_P];
  /* border pixels: limits by the set of their padding taps, which few classes share
   * (8 for a padded 3x3): computed once per class and channel group */
  uint64_t lim0[EB_OG], limb[EB_P][EB_OG], lcache[EB_LIMCACHE][EB_OG], lkey[EB_LIMCACHE];
  int ln = 0;
  const uint64_t *limp[EB_P];
  int32_t corr[EB_OG];
  uint32_t neg = 0;
  int fuse_ok = 0;
#if defined(EB_VA_GT)
  fuse_ok = !bits && out->bits != NULL && (size_t)taps * wpr <= (size_t)EB_MAX_STEPS;
#endif
  /* a float output's stage in registers too (fuse 2): EB_F32_EPI */
  int ffuse_ok = 0;
#if defined(EB_F32_EPI)
  ffuse_ok = !bits && out->f32 != NULL && out->bits == NULL && (size_t)taps * wpr <= (size_t)EB_MAX_STEPS;
#endif
  static const int32_t zero_corr[EB_OG];
  /* a border pixel's padding correction, by the set of its padding taps (as lcache) */
  int32_t corrp[EB_P][EB_OG], ccache[EB_LIMCACHE][EB_OG];
  uint64_t ckey[EB_LIMCACHE];
  int cn = 0;
  EB_ISA(f32_stage) fe;
  fe.lo = out->out_min, fe.hi = out->out_max, fe.rlo = out->res_min, fe.rhi = out->res_max, fe.full = full;
  fe.clo = out->clamp_lo, fe.chi = out->clamp_hi, fe.alo = out->aff_lo, fe.ahi = out->aff_hi, fe.post = out->post;
  int y_lo, y_hi, x_lo, x_hi;
  EB_ISA(interior)(g->oh, g->ih, g->sh, g->pt, (g->kh - 1) * g->dh + 1, &y_lo, &y_hi);
  EB_ISA(interior)(g->ow, g->iw, g->sw, g->pl, (g->kw - 1) * g->dw + 1, &x_lo, &x_hi);
  EB_ISA(f32_group) fg;
  /* a padded copy of the rows (pad_copy) where the map has a border to pad */
  const int keyed = EB_KEYED(g);
  const int border = y_lo > 0 || y_hi < g->oh || x_lo > 0 || x_hi < g->ow;
  uint64_t pbuf[EB_PADBUF];
  for (int c0 = r0, c1 = r1; c0 < r1; c0 = c1) {
    eb_conv_geom gp;
    const int padded = border && EB_ISA(pad_copy)(g, x, xps, c0, r1, pbuf, &gp, &c1);
    if (!padded) c1 = r1;
    /* where the taps are read: the copy, or the input with pointers to pv.zero at the border */
    const eb_conv_geom *gx = padded ? &gp : g;
    const uint64_t *xx = padded ? pbuf : x;
    for (int og = oc0; og < oc1; og += EB_OG) {
      const int on = oc1 - og < EB_OG ? oc1 - og : EB_OG;
      const uint64_t *wg = pv.w + (size_t)(og / 8) * pv.bstride;
      if (out->f32 && !out->bits) EB_ISA(f32_group_of)(out, og, on, &fg);
      fe.m = fg.m, fe.b = fg.b, fe.t = fg.t, fe.s2 = fg.s2, fe.b2 = fg.b2, fe.on = on;
      cn = 0;
      if (fuse_ok) {
        ln = 0;
        EB_ISA(bit_limits)(out, og, on, full, NULL, lim0);
        neg = 0;
        for (int c = 0; c < on; ++c) neg |= (uint32_t)(out->dir[og + c] < 0) << (unsigned)c;
      }
      for (int r = c0; r < c1; ++r) {
        const int n = r / g->oh, oy = r % g->oh, nx = padded ? 0 : n;
        /* row_in, x_lo, x_hi: the pixels without padding taps (no correction);
         * the copy reads every block as an interior one */
        const int row_in = oy >= y_lo && oy < y_hi;
        const uint64_t row_key = keyed && !row_in ? EB_ISA(pad_key_row)(g, oy) : 0;
        const int read_in = padded || row_in, read_lo = padded ? 0 : x_lo, read_hi = padded ? g->ow : x_hi;
        for (int ox0 = 0; ox0 < g->ow;) {
          /* blocks stop at the interior's edges, so every interior pixel runs in an interior block */
          const int edge = !read_in ? g->ow : ox0 < read_lo ? read_lo : ox0 < read_hi ? read_hi : g->ow;
          const int P = edge - ox0 < EB_P ? edge - ox0 : EB_P;
          const int block_in = read_in && ox0 >= read_lo && ox0 + P <= read_hi;
          /* dilation 1 inside the input, one plane: the kw taps of a window row are one run of
           * kw*wpr words in the input and in the packed filter, so a row is one
           * long tap and the per-tap overhead drops kw-fold */
          const int rowrun = block_in && g->dw == 1 && planes == 1 && g->kh <= EB_TAPCHUNK;
          const int fuse = fuse_ok && (rowrun || taps <= EB_TAPCHUNK)
                               ? 1 : ffuse_ok && (rowrun || taps <= EB_TAPCHUNK) ? 2 : 0;
          if (fuse == 2)
            for (int p = 0; p < P; ++p) {
              const int ox = ox0 + p;
              const size_t pix = (size_t)r * (size_t)g->ow + (size_t)ox;
              fe.y[p] = out->f32 + pix * (size_t)g->oc + (size_t)og;
              fe.res[p] = out->res ? out->res + pix * (size_t)g->oc + (size_t)og : NULL;
              fe.corr[p] = zero_corr;
              if (pad_value || (row_in && ox >= x_lo && ox < x_hi)) continue;
              const uint64_t key = keyed ? EB_ISA(pad_key)(g, row_key, ox) : 0;
              int hit = -1;
              for (int i = 0; i < cn && keyed; ++i)
                if (ckey[i] == key) hit = i;
              if (hit >= 0) {
                fe.corr[p] = ccache[hit];
                continue;
              }
              int32_t *dst = corrp[p];
              if (keyed && cn < EB_LIMCACHE) {
                ckey[cn] = key;
                dst = ccache[cn++];
              }
              memset(dst, 0, sizeof corrp[p]);
              EB_ISA(pad_corr)(g, &pv, oy, ox, og, on, 1, dst);
              fe.corr[p] = dst;
            }
          if (fuse == 1)
            for (int p = 0; p < P; ++p) {
              const int ox = ox0 + p;
              limp[p] = lim0;
              if (pad_value || (row_in && ox >= x_lo && ox < x_hi)) continue;
              const uint64_t key = keyed ? EB_ISA(pad_key)(g, row_key, ox) : 0;
              int hit = -1;
              for (int i = 0; i < ln && keyed; ++i)
                if (lkey[i] == key) hit = i;
              if (hit >= 0) {
                limp[p] = lcache[hit];
                continue;
              }
              memset(corr, 0, sizeof corr);
              EB_ISA(pad_corr)(g, &pv, oy, ox, og, on, 1, corr);
              uint64_t *dst = limb[p];
              if (keyed && ln < EB_LIMCACHE) {
                lkey[ln] = key;
                dst = lcache[ln++];
              }
              EB_ISA(bit_limits)(out, og, on, full, corr, dst);
              limp[p] = dst;
            }
          for (int j = 0; j < planes; ++j) {
            if (!fuse) memset(cnt, 0, sizeof cnt);
            if (rowrun) {
              const size_t row0 = (size_t)nx * (size_t)gx->ih + (size_t)(oy * gx->sh - gx->pt);
              const uint64_t *base =
                  xx + (row0 * (size_t)gx->iw + (size_t)(ox0 * gx->sw - gx->pl)) * xps + (size_t)j * wpr;
              EB_ISA(core_n)(P, bits != 0, fuse, g->kh, (size_t)g->kw * wpr, NULL, base,
                             (size_t)g->dh * (size_t)gx->iw * xps, (size_t)g->sw * xps, wg, pv.bstride, cnt, limp, neg,
                             obits, &fe);
            } else
            for (int t0 = 0; t0 < taps; t0 += EB_TAPCHUNK) {
              const int nt = taps - t0 < EB_TAPCHUNK ? taps - t0 : EB_TAPCHUNK;
              if (block_in) EB_ISA(tap_ptrs_inside)(gx, xx, xps, (size_t)j * wpr, nx, oy, ox0, P, t0, nt, ptrs);
              else EB_ISA(tap_ptrs)(g, x, xps, (size_t)j * wpr, pv.zero, n, oy, ox0, P, t0, nt, ptrs);
              EB_ISA(core_n)(P, bits != 0, fuse, nt, wpr, ptrs, NULL, 0, 0, wg + (size_t)t0 * wpr * 8, pv.bstride, cnt,
                             limp, neg, obits, &fe);
            }
            if (fuse) break; /* one plane */
            for (int p = 0; p < P; ++p) {
              const int ox = ox0 + p;
              if (!bits) { /* xor: dot = taps*ic - 2*mismatches, with every tap read as +1 in the padding */
                if (on == EB_OG)
                  for (int c = 0; c < EB_OG; ++c) tot[p][c] = full - 2 * (int32_t)cnt[p][c];
                else
                  for (int c = 0; c < on; ++c) tot[p][c] = full - 2 * (int32_t)cnt[p][c];
                if (!pad_value && !(row_in && ox >= x_lo && ox < x_hi))
                  EB_ISA(pad_corr)(g, &pv, oy, ox, og, on, -1, tot[p]);
              } else { /* plane j: 2^j * (ones(a_j) - 2*popcount(a_j & w)) */
                const int32_t ones = EB_ISA(plane_ones)(g, x, xps, (size_t)j * wpr, wpr, n, oy, ox);
                const int32_t scale = (int32_t)(1u << (unsigned)j);
                for (int c = 0; c < on; ++c) {
                  const int32_t d = (ones - 2 * (int32_t)cnt[p][c]) * scale;
                  tot[p][c] = j ? tot[p][c] + d : d;
                }
              }
            }
          }
          const size_t pix0 = (size_t)r * (size_t)g->ow + (size_t)ox0;
          if (fuse) {
            uint64_t *const dst = fuse == 1 ? out->bits : out->sbits;
            const unsigned sh = (unsigned)(og % 64);
            for (int p = 0; dst && p < P; ++p) {
              uint64_t *wp = dst + (pix0 + (size_t)p) * owords + (size_t)og / 64;
              *wp = sh ? *wp | (uint64_t)obits[p] << sh : (uint64_t)obits[p];
            }
          } else {
            for (int p = 0; p < P; ++p)
              if (out->f32 && !out->bits) EB_ISA(emit_f32)(out, g->oc, pix0 + (size_t)p, og, on, tot[p], &fg);
              else EB_ISA(emit)(out, g->oc, pix0 + (size_t)p, og, on, tot[p]);
          }
          ox0 += P;
        }
      }
    }
  }
}

void EB_ISA(bconv_tile)(const eb_conv_geom *g, int pad_value, const uint64_t *x, const void *packed,
                        const eb_bin_out *out, int r0, int r1, int oc0, int oc1) {
  EB_ISA(conv_tile)(g, pad_value, 0, x, packed, out, r0, r1, oc0, oc1);
}

void EB_ISA(kbit_tile)(const eb_conv_geom *g, int bits, const uint64_t *planes, const void *packed,
                       const eb_bin_out *out, int r0, int r1, int oc0, int oc1) {
  EB_ISA(conv_tile)(g, 0, bits, planes, packed, out, r0, r1, oc0, oc1);
}

/* HORQ: the residual expansion is the reference's float code, step for step (the
 * same sums in the same order, so beta and the signs match bit for bit); the
 * order sign patches then go through the micro-kernel as order "pixels". */
void EB_ISA(horq_tile)(const eb_conv_geom *g, int order, const float *x, const void *packed, int32_t *acc,
                       float *beta, void *scratch, int r0, int r1) {
  const int taps = g->kh * g->kw;
  const eb_bpack_view pv = eb_bpack_view_of(packed, g->oc, taps, g->ic, 1);
  const size_t wpr = pv.wpr, wpf = (size_t)taps * wpr, plen = (size_t)taps * (size_t)g->ic;
  const int32_t plen_i = (int32_t)plen;
  uint64_t *hb = (uint64_t *)scratch;
  float *res = (float *)(hb + (size_t)order * wpf);
  const uint64_t *ptrs[EB_TAPCHUNK * EB_P];
  uint32_t cnt[EB_P][EB_OG];
  for (int r = r0; r < r1; ++r) {
    const int n = r / g->oh, oy = r % g->oh;
    for (int ox = 0; ox < g->ow; ++ox) {
      const size_t pix = (size_t)r * (size_t)g->ow + (size_t)ox;
      for (int t = 0; t < taps; ++t) {
        const int ky = t / g->kw, kx = t % g->kw;
        const int iy = oy * g->sh - g->pt + ky * g->dh, ix = ox * g->sw - g->pl + kx * g->dw;
        float *rp = res + (size_t)t * (size_t)g->ic;
        if (iy >= 0 && iy < g->ih && ix >= 0 && ix < g->iw)
          memcpy(rp, x + (((size_t)n * (size_t)g->ih + (size_t)iy) * (size_t)g->iw + (size_t)ix) * (size_t)g->ic,
                 (size_t)g->ic * sizeof(float));
        else
          for (int c = 0; c < g->ic; ++c) rp[c] = 0.0f;
      }
      for (int i = 0; i < order; ++i) {
        uint64_t *hi = hb + (size_t)i * wpf;
        float s = 0.0f;
        for (size_t t = 0; t < plen; ++t) s += fabsf(res[t]);
        const float b = s / (float)plen;
        memset(hi, 0, wpf * sizeof(uint64_t));
        for (int t = 0; t < taps; ++t) {
          float *rp = res + (size_t)t * (size_t)g->ic;
          uint64_t *hp = hi + (size_t)t * wpr;
          for (int c = 0; c < g->ic; ++c) {
            if (rp[c] < 0.0f) {
              hp[c / 64] |= (uint64_t)1 << (unsigned)(c % 64);
              rp[c] = rp[c] + b;
            } else {
              rp[c] = rp[c] - b;
            }
          }
        }
        beta[pix * (size_t)order + (size_t)i] = b;
      }
      for (int og = 0; og < g->oc; og += EB_OG) {
        const int on = g->oc - og < EB_OG ? g->oc - og : EB_OG;
        const uint64_t *wg = pv.w + (size_t)(og / 8) * pv.bstride;
        for (int i0 = 0; i0 < order; i0 += EB_P) {
          const int P = order - i0 < EB_P ? order - i0 : EB_P;
          memset(cnt, 0, sizeof cnt);
          for (int t0 = 0; t0 < taps; t0 += EB_TAPCHUNK) {
            const int nt = taps - t0 < EB_TAPCHUNK ? taps - t0 : EB_TAPCHUNK;
            for (int t = 0; t < nt; ++t)
              for (int p = 0; p < P; ++p) ptrs[t * EB_P + p] = hb + (size_t)(i0 + p) * wpf + (size_t)(t0 + t) * wpr;
            EB_ISA(core_n)(P, 0, 0, nt, wpr, ptrs, NULL, 0, 0, wg + (size_t)t0 * wpr * 8, pv.bstride, cnt, NULL, 0, NULL,
                           NULL);
          }
          for (int p = 0; p < P; ++p) {
            int32_t *ap = acc + (pix * (size_t)order + (size_t)(i0 + p)) * (size_t)g->oc + (size_t)og;
            for (int c = 0; c < on; ++c) ap[c] = plen_i - 2 * (int32_t)cnt[p][c];
          }
        }
      }
    }
  }
}

/* ---- packing and output stages: one output word at a time --------------------- */

void EB_ISA(pack_f32)(size_t rows, int c, const float *x, const float *thr, uint64_t *y) {
  const size_t wpr = eb_words((size_t)c);
  for (size_t r = 0; r < rows; ++r) {
    const float *xr = x + r * (size_t)c;
    uint64_t *yr = y + r * wpr;
    for (size_t k = 0; k < wpr; ++k) {
      const int j0 = (int)k * 64, jn = c - j0 < 64 ? c - j0 : 64;
      uint64_t word = 0;
#if defined(EB_PACK64)
      if (jn == 64) {
        yr[k] = EB_PACK64(xr + j0, thr ? thr + j0 : NULL);
        continue;
      }
#endif
      for (int b = 0; b < jn; ++b) word |= (uint64_t)(xr[j0 + b] < (thr ? thr[j0 + b] : 0.0f)) << (unsigned)b;
      yr[k] = word;
    }
  }
}

void EB_ISA(acc_to_bits)(size_t rows, int c, const int32_t *acc, const int32_t *thr, const int32_t *dir,
                         uint64_t *y) {
  const size_t wpr = eb_words((size_t)c);
  for (size_t r = 0; r < rows; ++r) {
    const int32_t *ar = acc + r * (size_t)c;
    uint64_t *yr = y + r * wpr;
    for (size_t k = 0; k < wpr; ++k) {
      const int j0 = (int)k * 64, jn = c - j0 < 64 ? c - j0 : 64;
      uint64_t word = 0;
#if defined(EB_BITS64)
      if (jn == 64) {
        yr[k] = EB_BITS64(ar + j0, thr + j0, dir + j0);
        continue;
      }
#endif
      for (int b = 0; b < jn; ++b) {
        const int32_t a = ar[j0 + b], t = thr[j0 + b], d = dir[j0 + b];
        word |= (uint64_t)((d > 0 && a < t) || (d < 0 && a > t)) << (unsigned)b;
      }
      yr[k] = word;
    }
  }
}

/* Max of +-1 values is the AND of their words: word loops innermost, so the
 * compiler vectorizes them with this file's ISA. */
void EB_ISA(bmaxpool_tile)(const eb_conv_geom *g, const uint64_t *x, uint64_t *y, int r0, int r1) {
  const size_t wpr = eb_words((size_t)g->ic);
  for (int r = r0; r < r1; ++r) {
    const int n = r / g->oh, oy = r % g->oh;
    for (int ox = 0; ox < g->ow; ++ox) {
      uint64_t *yp = y + ((size_t)r * (size_t)g->ow + (size_t)ox) * wpr;
      int any = 0;
      for (size_t k = 0; k < wpr; ++k) yp[k] = ~(uint64_t)0;
      for (int ky = 0; ky < g->kh; ++ky) {
        const int iy = oy * g->sh - g->pt + ky * g->dh;
        if (iy < 0 || iy >= g->ih) continue;
        for (int kx = 0; kx < g->kw; ++kx) {
          const int ix = ox * g->sw - g->pl + kx * g->dw;
          if (ix < 0 || ix >= g->iw) continue;
          const uint64_t *xp = x + (((size_t)n * (size_t)g->ih + (size_t)iy) * (size_t)g->iw + (size_t)ix) * wpr;
          for (size_t k = 0; k < wpr; ++k) yp[k] &= xp[k];
          any = 1;
        }
      }
      if (!any) memset(yp, 0, wpr * sizeof(uint64_t));
    }
  }
}

/* One pixel's max over its window for channels [c0, c0 + n), n <= 64, with the expression of
 * eb_ref_maxpool_f32 in its tap order (taps: pointers to the window's pixels inside the
 * input, nt of them). */
static void EB_ISA(fmax_window)(int n, const float *const *taps, int nt, size_t c0, float *yp) {
#if defined(EB_FMAX64)
  if (n == 64 && nt > 0) { /* the running max in registers: a store and reload per tap cost more */
    EB_FMAX64(taps, nt, c0, yp);
    return;
  }
#endif
  for (int k = 0; k < n; ++k) {
    float m = 0.0f;
    for (int t = 0; t < nt; ++t) {
      const float v = taps[t][c0 + (size_t)k];
      if (!t || v > m) m = v;
    }
    yp[k] = m;
  }
}

/* Float max pooling and the signs of its output in one pass: a float stem's pool is
 * Bi-Real's first shortcut (float) and, packed, the first binary conv's input. y as
 * eb_ref_maxpool_f32 (the same comparison, so NaNs fall out alike), sbits (NULL: none)
 * as eb_ref_pack_f32 of y while its pixel is still in L1. x holds rows x_row0.. of the
 * n*ih input rows (a band of the map, band.c): the caller keeps every row a window of
 * rows [r0, r1) reads inside it; windows have at most EB_FMAX_TAPS taps. */
void EB_ISA(maxpool_f32_tile)(const eb_conv_geom *g, const float *x, int x_row0, const float *thr, float *y,
                              uint64_t *sbits, int r0, int r1) {
  const size_t c = (size_t)g->ic, wpr = eb_words(c);
  const float *taps[EB_FMAX_TAPS];
  for (int r = r0; r < r1; ++r) {
    const int nb = r / g->oh, oy = r % g->oh;
    for (int ox = 0; ox < g->ow; ++ox) {
      const size_t pix = (size_t)r * (size_t)g->ow + (size_t)ox;
      float *yp = y + pix * c;
      int nt = 0;
      for (int ky = 0; ky < g->kh; ++ky) {
        const int iy = oy * g->sh - g->pt + ky * g->dh;
        if (iy < 0 || iy >= g->ih) continue;
        const float *xrow = x + (size_t)(nb * g->ih + iy - x_row0) * (size_t)g->iw * c;
        for (int kx = 0; kx < g->kw; ++kx) {
          const int ix = ox * g->sw - g->pl + kx * g->dw;
          if (ix < 0 || ix >= g->iw) continue;
          taps[nt++] = xrow + (size_t)ix * c; /* kh*kw <= 64: the contract */
        }
      }
      for (size_t c0 = 0; c0 < c; c0 += 64)
        EB_ISA(fmax_window)(c - c0 < 64 ? (int)(c - c0) : 64, taps, nt, c0, yp + c0);
      if (sbits) EB_ISA(pack_f32)(1, (int)c, yp, thr, sbits + pix * wpr);
    }
  }
}
