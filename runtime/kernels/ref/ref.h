/*
 * Reference kernels: plain C11, one loop nest per op, no SIMD, no threads.
 *
 * They are the oracle every fast kernel is tested against, and the fallback
 * the runtime uses on any CPU. Semantics here are the contract: the NumPy
 * references in tests/python/numpy_ref.py compute exactly the same thing.
 *
 * Conventions shared by every kernel:
 *   - Activations are NHWC, dense, row-major.
 *   - Float weights of a conv are [oc][kh][kw][ic/groups] (OHWI).
 *   - Binary tensors (BIT1) pack their innermost axis into little-endian
 *     uint64 words: element j of a row sits in word j/64, bit j%64; bit 1
 *     means -1, bit 0 means +1 (so sign(0) = +1). A row of c elements takes
 *     eb_words(c) words; padding bits past c are zero.
 *   - out_min/out_max clamp float outputs (fused activation: none is
 *     -INFINITY/+INFINITY, ReLU is 0/+INFINITY, ReLU6 is 0/6).
 *   - Kernels never allocate; they trust the shapes the op layer checked.
 *   - Choice: any bias, mult, affine scale, dequantize zp may be NULL (0/1/1/0).
 */
#ifndef EDGEBNN_REF_H
#define EDGEBNN_REF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

static inline size_t eb_words(size_t c) { return (c + 63) / 64; }

/* Geometry of a 2-D window op (conv, pool). Output size is given, so bottom
 * and right padding are implied: ih + pt + pb = (oh-1)*sh + (kh-1)*dh + 1. */
typedef struct {
  int n, ih, iw, ic;  /* input  N,H,W,C */
  int oh, ow, oc;     /* output H,W,C   */
  int kh, kw;         /* window         */
  int sh, sw;         /* strides        */
  int dh, dw;         /* dilations      */
  int pt, pl;         /* top/left padding */
  int groups;         /* conv only; 1 otherwise */
} eb_conv_geom;

/* ---- float ------------------------------------------------------------ */

/* y[n][oh][ow][oc] = bias[oc] + sum over (ky,kx,c in group) x * w, zero padding. */
void eb_ref_conv2d_f32(const eb_conv_geom *g, const float *x, const float *w,
                       const float *bias /* nullable */, float out_min,
                       float out_max, float *y);

/* Depthwise, channel multiplier m = oc/ic. Weights [kh][kw][oc]; output
 * channel o reads input channel o/m. */
void eb_ref_dwconv2d_f32(const eb_conv_geom *g, const float *x, const float *w,
                         const float *bias, float out_min, float out_max,
                         float *y);

/* y[n][o] = bias[o] + sum_k x[n][k] * w[o][k] */
void eb_ref_fc_f32(int n, int k, int o, const float *x, const float *w,
                   const float *bias, float out_min, float out_max, float *y);

/* HetConv (part p): filter j applies a kh x kw kernel to the ic/p input
 * channels c with c % p == j % p (w3[j][ky][kx][i] is channel (j%p) + i*p)
 * and a 1x1 kernel to the other ic - ic/p channels in increasing order
 * (w1[j][i]), read at the window centre (oh*sh - pt + (kh/2)*dh, likewise
 * for w). Requires ic % p == 0, odd kh/kw. No dense kernel with zeros. */
void eb_ref_hetconv2d_f32(const eb_conv_geom *g, int part, const float *x,
                          const float *w3, const float *w1, const float *bias,
                          float out_min, float out_max, float *y);

/* ---- binary ----------------------------------------------------------- */

/* Integer accumulators of a binary conv with g->groups groups (0 reads as 1).
 * x: BIT1 [n][ih][iw][ic], w: BIT1 [oc][kh][kw][ic/groups] (each tap row packed
 * on its own: words(ic/groups) words). Output channel o reads the input
 * channels of its group, [(o / (oc/groups)) * (ic/groups), +ic/groups), which
 * need not start on a word.
 * acc[n][oh][ow][oc] = sum over taps and c of x*w in {-1,+1}; a tap outside
 * the input contributes 0 when pad_value == 0 (zero padding, exact border)
 * and +1 * w when pad_value == 1 (one padding). */
void eb_ref_bconv2d_acc(const eb_conv_geom *g, int pad_value,
                        const uint64_t *x, const uint64_t *w, int32_t *acc);

/* acc[n][o] = sum_k x[n][k]*w[o][k], x BIT1 [n][k], w BIT1 [o][k]. */
void eb_ref_bfc_acc(int n, int k, int o, const uint64_t *x, const uint64_t *w,
                    int32_t *acc);

/* Float output stage: y = clamp(mult[c] * acc + bias[c]) over rows x c. */
void eb_ref_acc_to_f32(size_t rows, int c, const int32_t *acc,
                       const float *mult, const float *bias, float out_min,
                       float out_max, float *y);

/* Packed output stage: output element is -1 (bit 1) when
 *   dir[c] > 0 and acc < thr[c],   or   dir[c] < 0 and acc > thr[c];
 * else +1 (bit 0). y is BIT1 [rows][c]. */
void eb_ref_acc_to_bits(size_t rows, int c, const int32_t *acc,
                        const int32_t *thr, const int32_t *dir, uint64_t *y);

/* K-bit unsigned activations (HWGQ): code q = clamp(floor(x/step + 0.5f),
 * 0, 2^bits - 1) computed in float32; acc = sum over taps, c of q * w with
 * w in {-1,+1} (bit-serial: sum_j 2^j (popcount(a_j & ~wbit) -
 * popcount(a_j & wbit))). Padding taps are code 0. x: f32 NHWC, w: BIT1
 * [oc][kh][kw][ic]. acc [n][oh][ow][oc]. scratch: >= eb_ref_kbit_scratch. */
/* Choice: scratch sizes are in bytes; scratch must be uint64_t-aligned. */
size_t eb_ref_kbit_scratch(const eb_conv_geom *g, int bits);
/* Step 1 of the K-bit conv for input pixels [p0, p1): codes clamp(floor(x/step + 0.5), 0,
 * 2^bits - 1), bit j of each code into plane j ([pixel][bits][words(ic)]). Split out so the
 * fast kernels (and their threads) quantize with exactly this arithmetic. */
void eb_ref_kbit_planes(const eb_conv_geom *g, int bits, float step, const float *x, uint64_t *planes,
                        size_t p0, size_t p1);
void eb_ref_kbit_conv2d_acc(const eb_conv_geom *g, int bits, float step,
                            const float *x, const uint64_t *w, int32_t *acc,
                            void *scratch);

/* HORQ order K on the im2col patch of each output position (paper form).
 * For each output pixel, r = the zero-padded patch (kh*kw*ic floats, tap
 * order ky,kx,c); for i in 0..K-1: h_i = sign(r) (sign(0) = +1),
 * beta[i] = mean(|r|) over the whole patch, r -= beta[i] * h_i (float32).
 * acc[pix][i][o] = h_i . w_o (integer), beta[pix][i].
 * Then y[pix][o] = clamp(mult[o] * sum_i beta[i]*acc[i][o] + bias[o]).
 * scratch >= eb_ref_horq_scratch. */
/* Choice: padding entries of r are 0: they count in the mean and as h = +1. */
size_t eb_ref_horq_scratch(const eb_conv_geom *g, int order);
void eb_ref_horq_conv2d_acc(const eb_conv_geom *g, int order, const float *x,
                            const uint64_t *w, int32_t *acc, float *beta,
                            void *scratch);
void eb_ref_horq_to_f32(size_t pixels, int order, int oc, const int32_t *acc,
                        const float *beta, const float *mult,
                        const float *bias, float out_min, float out_max,
                        float *y);

/* Sign and pack the last axis: bit 1 where x < thr[c] (thr nullable = 0). */
void eb_ref_pack_f32(size_t rows, int c, const float *x, const float *thr,
                     uint64_t *y);
/* The same from int8 codes: bit 1 where x < thr[c], thresholds in code units
 * (thr nullable = the zero point, i.e. the sign of the real value). */
void eb_ref_pack_i8(size_t rows, int c, const int8_t *x, const float *thr,
                    int32_t zero_point, uint64_t *y);
/* Unpack BIT1 rows to +-1.0f. */
void eb_ref_unpack_f32(size_t rows, int c, const uint64_t *x, float *y);

/* ---- pooling (padding taps are skipped) -------------------------------- */
/* Choice: a window with no tap inside the input outputs 0 (bmaxpool: +1). */
void eb_ref_maxpool_f32(const eb_conv_geom *g, const float *x, float *y);
/* count_include_pad: divide by kh*kw (taps inside padding count as 0), else
 * by the number of taps inside the input. */
void eb_ref_avgpool_f32(const eb_conv_geom *g, int count_include_pad,
                        const float *x, float *y);
/* Max of +-1 values = bitwise AND of the packed words over the window. */
void eb_ref_bmaxpool(const eb_conv_geom *g, const uint64_t *x, uint64_t *y);
/* y[n][c] = mean over hw of x[n][hw][c] */
void eb_ref_global_avgpool_f32(int n, int hw, int c, const float *x, float *y);

/* ---- elementwise and data movement ------------------------------------ */
void eb_ref_add_f32(size_t count, const float *a, const float *b,
                    float out_min, float out_max, float *y);
void eb_ref_clamp_f32(size_t count, const float *x, float lo, float hi,
                      float *y);
/* y = x >= 0 ? x : slope[c] * x */
/* y = |x| */
void eb_ref_abs_f32(size_t count, const float *x, float *y);
/* y[r] = mean of x[r, 0..c): summed in index order, then divided by c */
void eb_ref_channel_mean_f32(size_t rows, int c, const float *x, float *y);
/* y[r, i] = a[r, i] * b[r, i], or * b[r] when per_row (b's last dim is 1) */
void eb_ref_mul_f32(size_t rows, int c, const float *a, const float *b, int per_row, float *y);
void eb_ref_prelu_f32(size_t rows, int c, const float *x, const float *slope,
                      float *y);
/* y = clamp(x * scale[c] + bias[c]) */
void eb_ref_affine_f32(size_t rows, int c, const float *x, const float *scale,
                       const float *bias, float out_min, float out_max,
                       float *y);
/* Numerically stable softmax over the last axis. */
void eb_ref_softmax_f32(size_t rows, int c, const float *x, float *y);
/* Generic transpose of an ndim <= 6 tensor of elem_size-byte elements:
 * output axis i is input axis perm[i]. */
void eb_ref_transpose(int ndim, const uint32_t *in_dims, const int *perm,
                      size_t elem_size, const void *x, void *y);
/* ShuffleNet channel shuffle on the last axis: y[k*groups + j] =
 * x[j*(c/groups) + k]. */
void eb_ref_channel_shuffle(size_t rows, int c, int groups, size_t elem_size,
                            const void *x, void *y);
/* Concat along an axis: each input is outer x inner_i elements (inner_i =
 * the product of its dims from the axis on); output rows are the inputs'
 * rows laid side by side. */
void eb_ref_concat(int n_in, size_t outer, const size_t *inner_bytes,
                   const void *const *xs, void *y);

/* ---- int8 ------------------------------------------------------------- */
/* q = clamp(round_half_away_from_zero(x / scale) + zp, -128, 127) */
/* Choice: x / scale is computed in float32; a NaN quantizes like 0. */
void eb_ref_quantize_i8(size_t count, const float *x, float scale, int32_t zp,
                        int8_t *y);
/* Per-channel along the axis whose stride (in elements) is `inner` and size
 * `channels`: y = (q - zp[ch]) * scale[ch]. Per-tensor: channels = 1. */
void eb_ref_dequantize_i8(size_t outer, int channels, size_t inner,
                          const int8_t *x, const float *scale,
                          const int32_t *zp, float *y);

/* ---- int8 layers (TFLite's quantized arithmetic) --------------------------
 * Activations are int8 with a per-tensor scale and zero point (real =
 * (q - zp) * scale); conv/FC weights are symmetric int8 (zero point 0) with one
 * scale per output channel (or one for all); bias is int32 in units of
 * in_scale * w_scale[c]. The rules are TFLite's reference kernels, bit for bit:
 *   multiplier: QuantizeMultiplier(m) = (q, shift) with m = q * 2^(shift - 31),
 *     q = round_half_away(frexp(m) * 2^31) in [2^30, 2^31) (2^31 -> 2^30, shift+1),
 *     m == 0 or shift < -31 -> (0, 0); m computed in double from float scales.
 *   requantize: MultiplyByQuantizedMultiplier(acc, q, shift) =
 *     RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc << max(shift, 0),
 *     q), max(-shift, 0)), i.e. a doubling high multiply rounded half away from
 *     zero, then a rounding right shift (ties away from zero).
 *   activation range: [max(-128, zp + round(lo / scale)), min(127, zp +
 *     round(hi / scale))] for the fused ReLU/ReLU6, else [-128, 127]. */
typedef struct {
  int32_t in_zp, out_zp;
  int32_t act_min, act_max;
  /* weights' zero point: 0 (symmetric) except for per-tensor weights imported from
   * TFLite's uint8 asymmetric models, shifted to int8 (TFLite's filter_offset) */
  int32_t w_zp;
} eb_q8_io;

void eb_quantize_multiplier(double m, int32_t *q, int *shift);
int32_t eb_mul_by_quantized_multiplier(int32_t acc, int32_t q, int shift);
/* mult/shift per output channel: in_scale * w_scale[c] / out_scale. w_scale has
 * oc entries when per_channel, else one. */
void eb_q8_channel_multipliers(int oc, float in_scale, const float *w_scale, int per_channel, float out_scale,
                               int32_t *mult, int *shift);

/* acc = bias[o] + sum (x - in_zp) * (w - w_zp) over taps inside the input (padding is
 * real 0, i.e. contributes nothing); y = clamp(MBQM(acc) + out_zp). */
void eb_ref_conv2d_i8(const eb_conv_geom *g, const int8_t *x, const int8_t *w, const int32_t *bias,
                      const int32_t *mult, const int *shift, const eb_q8_io *q, int8_t *y);
/* Weights [kh][kw][oc]; output channel o reads input channel o / (oc / ic). */
void eb_ref_dwconv2d_i8(const eb_conv_geom *g, const int8_t *x, const int8_t *w, const int32_t *bias,
                        const int32_t *mult, const int *shift, const eb_q8_io *q, int8_t *y);
void eb_ref_fc_i8(int n, int k, int o, const int8_t *x, const int8_t *w, const int32_t *bias, const int32_t *mult,
                  const int *shift, const eb_q8_io *q, int8_t *y);
/* TFLite's quantized add: both inputs rescaled to twice the larger input scale
 * with 20 bits of headroom, summed, rescaled to the output. */
void eb_ref_add_i8(size_t count, const int8_t *a, float a_scale, int32_t a_zp, const int8_t *b, float b_scale,
                   int32_t b_zp, float y_scale, const eb_q8_io *q, int8_t *y);
/* Max over the taps inside the input (input and output share scale and zp). */
void eb_ref_maxpool_i8(const eb_conv_geom *g, const eb_q8_io *q, const int8_t *x, int8_t *y);
/* TFLite's average: sum of the taps inside the input over their count, rounded
 * half away from zero, or with round_half_up floor((sum + count/2) / count): TFLite's
 * uint8 kernel on codes shifted to int8 (count_include_pad: padding taps are real 0 = in_zp and
 * the divisor is kh*kw). Input and output share scale and zp. */
void eb_ref_avgpool_i8(const eb_conv_geom *g, int count_include_pad, int round_half_up, const eb_q8_io *q,
                       const int8_t *x, int8_t *y);
/* acc = sum over hw of (x - in_zp); y = clamp(MBQM(acc, in_scale / (out_scale * hw)) + out_zp). */
void eb_ref_global_avgpool_i8(int n, int hw, int c, const int8_t *x, float in_scale, float out_scale,
                              const eb_q8_io *q, int8_t *y);

#ifdef __cplusplus
}
#endif
#endif /* EDGEBNN_REF_H */
