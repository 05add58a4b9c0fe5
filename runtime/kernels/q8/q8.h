/*
 * Fast int8 kernels with TFLite's exact fixed-point requantization: the same
 * bytes as the reference kernels in ref/ref_int8.c (tests/c/test_q8_kernels.c
 * checks every variant against them), at GEMM speed.
 *
 * The accumulator of a conv/FC output is
 *   acc = bias + sum_k (x_k - x_zp) (w_k - w_zp)
 *       = colterm[o] + sum_k x'_k w_k - rowcoef * sum_k x_k
 * where the kernel multiplies stored codes x' = x (portable, NEON) or x' = x + 128 as
 * unsigned bytes (x XOR 0x80: AVX512-VNNI's vpdpbusd multiplies u8 by s8) by the
 * weights as stored; colterm[o] = bias[o] - x_zp * (sum_k w_k - K w_zp) (- 128 sum_k w_k
 * for the u8 activations) and rowcoef = w_zp are fixed per session: with per-channel
 * (symmetric) weights rowcoef is 0 and no row sums are taken at all. (The u8 side used
 * to be the weights, w + 128, which cost a row sum per row and a subtraction per
 * accumulator; flipping each activation byte costs one XOR per 64 codes.) Every step
 * wraps modulo 2^32, so the result equals the reference's exact int32 accumulator (which
 * the op layer proved cannot overflow), whatever the size of the intermediate terms.
 *
 * Requantization is TFLite's MultiplyByQuantizedMultiplier, rewritten without
 * branches: SaturatingRoundingDoublingHighMul(a, q) with q >= 0 is exactly
 * (a * q + 2^30) >> 31 (floor); the nudge 1 - 2^30 for negative products followed
 * by truncation toward zero gives the same integer. RoundingDivideByPOT follows.
 *
 * On 64-bit lanes the two roundings fold into one add and shift (eb_q8_fill_fast): with
 * a = acc << lsh (wrapped) and t = a * q exact,
 *   y = (t + 2^30 + [rsh > 0] (2^(30+rsh) - [t < 0] 2^31)) >> (31 + rsh)
 * because floor(floor(u / 2^31) / 2^r) = floor(u / 2^(31+r)), and RoundingDivideByPOT's
 * "minus one below zero" tie rule tests the sign of t + 2^30, which differs from t's only
 * where the high product is 0 and the tie rule cannot fire. |t| < 2^62, so nothing overflows.
 */
#ifndef EDGEBNN_Q8_H
#define EDGEBNN_Q8_H

#include <stddef.h>
#include <stdint.h>

#include "ref/ref.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest GEMM k (kh * kw * ic) for which eb_q8_kernels.conv builds its own rows (on
 * the stack, four at least); larger convs go through eb_q8_im2col and the GEMM. */
#define EB_Q8_CONV_MAX_K 4096

/* Output channels are processed in blocks of 16 (one 16-lane vector of int32),
 * panels of up to EB_Q8_NB blocks share one stream of packed weights. */
#define EB_Q8_BLOCK 16
#define EB_Q8_NB 4

/* Per output channel requantization, padded to a multiple of EB_Q8_BLOCK. */
typedef struct {
  const int32_t *mult; /* TFLite multiplier, >= 0 */
  const int32_t *lsh;  /* max(shift, 0), capped at 32 (all bits shifted out, as ref) */
  const int32_t *rsh;  /* max(-shift, 0) */
  int32_t out_zp, act_min, act_max;
  /* NULL, or the one-shift form (see above) per block of 16 channels (eb_q8_fill_fast) */
  const int64_t *fast;
} eb_q8_requant;

/* A conv/FC as y[rows][oc] = requant(x[rows][k] . w[oc][k]). */
typedef struct {
  int k, oc;
  int ocp;            /* oc rounded up to EB_Q8_BLOCK */
  const void *w;      /* packed by eb_q8_pack_gemm for the variant */
  const int32_t *colterm; /* [ocp] */
  int32_t rowcoef;
  eb_q8_requant rq;
  /* 1 when no weight code is -128 (eb_q8_w_no_min), so that two int8 x int8 products sum
   * within int16 ((-128)^2 twice is the one sum that does not): NEON then pairs its 8-bit
   * multiplies (vmull + vmlal) before widening. 0 (unknown) is always safe. */
  int w_no_min;
} eb_q8_gemm;

/* Depthwise conv with one output channel per input channel (no depth multiplier). */
typedef struct {
  eb_conv_geom g;
  int cp;             /* channels rounded up to EB_Q8_BLOCK */
  const int32_t *w;   /* [kh*kw][cp]: w - w_zp, zero padded */
  const int32_t *bias; /* [cp] (zeros when the layer has none) */
  /* [cp]: bias - in_zp * sum of the channel's kh*kw weights, for windows wholly inside the
   * input, which then multiply the codes x as they are (no zero point to subtract) */
  const int32_t *bias_in;
  int32_t in_zp;
  eb_q8_requant rq;
  /* NULL, or eb_q8_dw_pack's layout for the AVX-512 kernel (16-bit weight pairs) */
  const void *pk;
  /* NULL, or w as int16 [kh*kw][cp] for NEON's 16-bit multiply-accumulate (each w - w_zp fits);
   * the NEON kernel runs the portable one without it */
  const int16_t *w16;
} eb_q8_dw;

/* TFLite's quantized ADD (see eb_ref_add_i8) with its multipliers resolved. */
typedef struct {
  int32_t a_zp, b_zp;
  int32_t ma, la, ra, mb, lb, rb, my, ly, ry;
  int32_t out_zp, act_min, act_max;
} eb_q8_add;

/* Packed GEMM weight layouts (eb_q8_pack_gemm). */
enum {
  EB_Q8_LAYOUT_K16 = 0,  /* per panel of EB_Q8_NB blocks: [k][nb*16] s8 (portable) */
  EB_Q8_LAYOUT_VNNI = 1, /* per panel: [k/4][nb*16][4] s8, against u8 activations x + 128 (vpdpbusd) */
  EB_Q8_LAYOUT_K2 = 2    /* per block of 16: [k/2][16][2] s8, k padded to even with zero weights
                            (NEON: vmull_s8 on pairs of taps, vpadal adds each pair into int32) */
};

typedef struct {
  const char *name; /* reported by eb_op_backend */
  int layout;       /* EB_Q8_LAYOUT_* of its packed GEMM weights */
  int isa;          /* what the CPU must have: 0 baseline, 1 NEON, 2 AVX-512 with VNNI */
  /* 1: measured at least as fast as XNNPACK, so int8 runs here by default even where
   * XNNPACK is built in (q8_ops.c, eb_q8_enabled); 0: only when EDGEBNN_Q8 asks */
  int default_over_xnnpack;
  /* rows of x (row stride x_stride bytes) to rows of y (stride y_stride) */
  void (*gemm)(const eb_q8_gemm *g, size_t rows, const int8_t *x, size_t x_stride, int8_t *y, size_t y_stride);
  /* output rows [r0, r1) of n*oh */
  void (*dw_rows)(const eb_q8_dw *d, const int8_t *x, int8_t *y, int r0, int r1);
  void (*add)(const eb_q8_add *a, size_t count, const int8_t *x, const int8_t *b, int8_t *y);
  /* QUANTIZE, the same bytes as eb_ref_quantize_i8 */
  void (*quantize)(size_t count, const float *x, float scale, int32_t zp, int8_t *y);
  /* NULL, or a groups=1 conv of geometry cg straight from its input (im2col rows built in the
   * kernel's own buffer, as its u8 activations): output pixels [p0, p1) to y (row stride oc);
   * for k <= EB_Q8_CONV_MAX_K only */
  void (*conv)(const eb_q8_gemm *g, const eb_conv_geom *cg, const int8_t *x, int32_t x_zp, size_t p0, size_t p1,
               int8_t *y);
} eb_q8_kernels;

/* Variants this CPU can run, best last (the portable one is always first). */
const eb_q8_kernels *eb_q8_list(int *count);
/* The best; EDGEBNN_Q8=portable (environment) forces the baseline build, EDGEBNN_Q8=<name>
 * (e.g. q8-avx512vnni, q8-neon) one this CPU runs. */
const eb_q8_kernels *eb_q8_best(void);

/* Bytes of packed weights for k x oc (any layout). */
size_t eb_q8_packed_bytes(int k, int oc);
/* Packs w[oc][k] (zero point w_zp) for variant ks; fills colterm[ocp] from bias
 * (nullable) and x_zp, and returns rowcoef. */
int32_t eb_q8_pack_gemm(const eb_q8_kernels *ks, int k, int oc, const int8_t *w, int32_t w_zp, const int32_t *bias,
                        int32_t x_zp, void *packed, int32_t *colterm);
/* eb_q8_gemm.w_no_min for weight codes w[n]. */
int eb_q8_w_no_min(const int8_t *w, size_t n);
/* mult/lsh/rsh[ocp] from TFLite's (q, shift) pairs; padding channels get 0. */
void eb_q8_fill_requant(int oc, int ocp, const int32_t *q, const int *shift, int32_t *mult, int32_t *lsh,
                        int32_t *rsh);
/* The one-shift requantization table: per block of 16 channels, int64 lanes of the even
 * channels then of the odd ones (as vpmuldq pairs them) of round, shift, tie correction
 * ([rsh > 0] 2^31) and, for the odd channels only, the multiplier. */
#define EB_Q8_FAST_BLOCK 56 /* int64 per block: 3 x 16 + 8 */
size_t eb_q8_fast_bytes(int ocp);
/* From eb_q8_fill_requant's mult[ocp] and rsh[ocp]. */
void eb_q8_fill_fast(int ocp, const int32_t *mult, const int32_t *rsh, int64_t *fast);
void eb_q8_add_init(eb_q8_add *a, float a_scale, int32_t a_zp, float b_scale, int32_t b_zp, float y_scale,
                    const eb_q8_io *q);

/* Fills bias[cp] and bias_in[cp] of a depthwise plan from the layer's bias (nullable) and
 * its packed weights w[kh*kw][cp]. */
void eb_q8_dw_biases(int taps, int c, int cp, const int32_t *w, const int32_t *bias, int32_t in_zp, int32_t *bias_out,
                     int32_t *bias_in);

/* Depthwise weights as 16-bit pairs of taps per channel for vpdpwssd, in blocks of 32
 * channels: int16 w[npairs][2][16][2] (lanes ordered as unpacklo/hi_epi16 leave them),
 * then in the same lane order, per half (lo, hi): int32 bias_in[16], mult[16], lsh[16] and
 * an eb_q8_fill_fast block. w[taps][cp] are the zero-point-free weights (each fits int16),
 * bias_in from eb_q8_dw_biases, mult/lsh/rsh[cp] from eb_q8_fill_requant. Taps pair as
 * eb_q8_dw_pair_tap says. */
#define EB_Q8_DW_HALF (3 * 64 + EB_Q8_FAST_BLOCK * 8) /* bytes of one half's bias and requantization */
size_t eb_q8_dw_pack_bytes(int kh, int kw, int c);
void eb_q8_dw_pack(int kh, int kw, int c, int cp, const int32_t *w, const int32_t *bias_in, const int32_t *mult,
                   const int32_t *lsh, const int32_t *rsh, void *out);

/* Tap j (0, 1) of pair p, -1 for none. 3x3 pairs each column's top two taps and then the
 * bottom row's, so that a row of stride-1 outputs builds each input column's pairs once and
 * its neighbours reuse them; other shapes pair taps in order. */
static inline int eb_q8_dw_pair_tap(int kh, int kw, int p, int j) {
  static const signed char p33[5][2] = {{0, 3}, {1, 4}, {2, 5}, {6, 7}, {-1, 8}};
  if (kh == 3 && kw == 3) return p33[p][j];
  return 2 * p + j < kh * kw ? 2 * p + j : -1;
}

/* Output pixels [p0, p1) of a groups=1 conv as GEMM rows of kh*kw*ic codes (row i at
 * buf + i * stride, i from 0), taps in the padding filled with x_zp (real 0); flip: every
 * code XOR 0x80 (the u8 activations of the VNNI GEMM). Bytes of a row past its codes (up to
 * stride) are left undefined. */
void eb_q8_im2col(const eb_conv_geom *g, const int8_t *x, int32_t x_zp, size_t p0, size_t p1, int8_t *buf,
                  size_t stride, int flip);

/* GLOBAL_AVG_POOL, the same bytes as eb_ref_global_avgpool_i8 (same arguments); one build
 * for all CPUs: the compiler vectorizes the sums, and the layer is too small for more to pay. */
void eb_q8_global_avgpool_portable(int n, int hw, int c, const int8_t *x, float in_scale, float out_scale,
                                   const eb_q8_io *q, int8_t *y);

/* The variants (declared for tests and benchmarks). */
void eb_q8_gemm_portable(const eb_q8_gemm *g, size_t rows, const int8_t *x, size_t x_stride, int8_t *y,
                         size_t y_stride);
void eb_q8_dw_rows_portable(const eb_q8_dw *d, const int8_t *x, int8_t *y, int r0, int r1);
void eb_q8_add_portable(const eb_q8_add *a, size_t count, const int8_t *x, const int8_t *b, int8_t *y);
#if defined(EB_HAVE_X86_KERNELS)
void eb_q8_gemm_avx512vnni(const eb_q8_gemm *g, size_t rows, const int8_t *x, size_t x_stride, int8_t *y,
                           size_t y_stride);
void eb_q8_conv_avx512vnni(const eb_q8_gemm *g, const eb_conv_geom *cg, const int8_t *x, int32_t x_zp, size_t p0,
                           size_t p1, int8_t *y);
void eb_q8_dw_rows_avx512(const eb_q8_dw *d, const int8_t *x, int8_t *y, int r0, int r1);
void eb_q8_add_avx512(const eb_q8_add *a, size_t count, const int8_t *x, const int8_t *b, int8_t *y);
void eb_q8_quantize_avx512(size_t count, const float *x, float scale, int32_t zp, int8_t *y);
#endif
#if defined(EB_HAVE_NEON_KERNELS)
void eb_q8_gemm_neon(const eb_q8_gemm *g, size_t rows, const int8_t *x, size_t x_stride, int8_t *y, size_t y_stride);
void eb_q8_dw_rows_neon(const eb_q8_dw *d, const int8_t *x, int8_t *y, int r0, int r1);
void eb_q8_add_neon(const eb_q8_add *a, size_t count, const int8_t *x, const int8_t *b, int8_t *y);
/* aarch64 only (vdivq_f32; armv7 NEON has no IEEE division and flushes denormals): armv7 runs
 * eb_ref_quantize_i8 */
void eb_q8_quantize_neon(size_t count, const float *x, float scale, int32_t zp, int8_t *y);
#endif

#ifdef __cplusplus
}
#endif
#endif /* EDGEBNN_Q8_H */
