/*
 * Kernel selection: one table of binary-kernel entry points per variant and the
 * run-time pick of the best one this CPU can execute. The op layer calls
 * through the session's table (src/bin_ops.c splits each op into tiles for the
 * thread pool); tests walk eb_kernels_list() and compare each entry with ref.
 *
 * Every fast variant shares one packed weight layout (bpack.h) made once per
 * session, and one body (portable/bin_impl.h) compiled once per instruction
 * set with that set's vector ops. Tile entry points compute output rows
 * [r0, r1) of the n*oh rows and output channels [oc0, oc1) only, so tiles are
 * independent and results never depend on how an op is split.
 */
#ifndef EDGEBNN_KERNELS_H
#define EDGEBNN_KERNELS_H

#include "bpack.h"
#include "ref/ref.h"

/* Where a conv tile's output goes. The fast variants compute the final value of
 * a pixel's channels in registers and store it here directly, so a layer never
 * writes and rereads an int32 accumulator array:
 *   bits != NULL: packed bits [rows][words(oc)] as eb_ref_acc_to_bits (thr, dir);
 *   else f32 != NULL: floats [rows][oc] as eb_ref_acc_to_f32 (mult, bias, clamp);
 *   else acc: the raw int32 accumulators [rows][oc].
 * With bits or f32 set, acc is scratch (n*oh*ow*oc int32) that only the unpacked
 * ref variant uses. */
typedef struct {
  int32_t *acc;
  uint64_t *bits;
  const int32_t *thr, *dir;
  float *f32;
  const float *mult, *bias;
  float out_min, out_max;
  /* A float output may also take a residual ADD and the SIGN_PACK of the sum
   * (Bi-Real's shortcut, fused in the epilogue so the float map is read once):
   *   res != NULL: f32 = clamp(clamp(m*acc + b, out_min, out_max) + res, res_min, res_max);
   *   sbits != NULL: sbits [rows][words(oc)] = the f32 values < sthr (0 without), as
   *   eb_ref_pack_f32; channel tiles then start at multiples of EB_BITS_OC_ALIGN. */
  const float *res;
  float res_min, res_max;
  uint64_t *sbits;
  const float *sthr;
  /* Element-wise stages between the conv and the residual (QuickNet: ReLU, then BatchNorm),
   * applied in this order when their bit is set in post, each as its ref op:
   *   EB_POST_CLAMP: f32 = clamp(f32, clamp_lo, clamp_hi)              (eb_ref_clamp_f32)
   *   EB_POST_AFFINE: f32 = clamp(f32*scale[c] + shift[c], aff_lo, aff_hi) (eb_ref_affine_f32;
   *                   scale NULL reads 1, shift NULL reads 0) */
  int post;
  float clamp_lo, clamp_hi;
  const float *scale, *shift;
  float aff_lo, aff_hi;
} eb_bin_out;
enum { EB_POST_CLAMP = 1, EB_POST_AFFINE = 2 };

/* Channel tiles of a bits output start at a multiple of this: 64 channels
 * share one output word, and two threads must never write the same word. */
#define EB_BITS_OC_ALIGN 64

/* Taps a float max pool window may have in maxpool_f32_tile. */
#define EB_FMAX_TAPS 64

typedef struct eb_bin_kernels_s {
  const char *name; /* reported by eb_op_backend: "ref", "scalar", "popcnt", "avx2", "avx512bw", "avx512", "neon" */
  /* 0 for ref: the op layer calls the whole-op eb_ref_* functions (one thread,
   * unpacked weights). 1: the entry points below, on bpack weights. */
  int packed;
  /* xor-popcount conv; BFULLY_CONNECTED runs as a 1x1 conv over a 1 x n image.
   * Accumulators as eb_ref_bconv2d_acc, then the output stage of *out, for rows
   * r in [r0, r1) of n*oh and channels [oc0, oc1); oc0 a multiple of
   * EB_BPACK_OC_ALIGN (of EB_BITS_OC_ALIGN for a bits output). */
  void (*bconv_tile)(const eb_conv_geom *g, int pad_value, const uint64_t *x, const void *packed,
                     const eb_bin_out *out, int r0, int r1, int oc0, int oc1);
  /* K-bit (HWGQ) conv on bit planes [n][ih][iw][bits][words(ic)] made by eb_ref_kbit_planes;
   * accumulators as eb_ref_kbit_conv2d_acc, then *out as bconv_tile. Packed with planes = bits. */
  void (*kbit_tile)(const eb_conv_geom *g, int bits, const uint64_t *planes, const void *packed,
                    const eb_bin_out *out, int r0, int r1, int oc0, int oc1);
  /* HORQ rows [r0, r1): acc and beta as eb_ref_horq_conv2d_acc; scratch of
   * eb_ref_horq_scratch bytes, private to the tile. */
  void (*horq_tile)(const eb_conv_geom *g, int order, const float *x, const void *packed, int32_t *acc, float *beta,
                    void *scratch, int r0, int r1);
  /* Same contracts as eb_ref_pack_f32 / eb_ref_acc_to_bits (rows split by the caller). */
  void (*pack_f32)(size_t rows, int c, const float *x, const float *thr, uint64_t *y);
  void (*acc_to_bits)(size_t rows, int c, const int32_t *acc, const int32_t *thr, const int32_t *dir, uint64_t *y);
  /* eb_ref_bmaxpool for rows [r0, r1) of n*oh. */
  void (*bmaxpool_tile)(const eb_conv_geom *g, const uint64_t *x, uint64_t *y, int r0, int r1);
  /* Float max pooling, eb_ref_maxpool_f32 for rows [r0, r1) of n*oh, and when sbits is not
   * NULL eb_ref_pack_f32 of those output pixels (thr NULL reads 0); x holds the input rows
   * from x_row0 on (of the n*ih), every row those windows read; kh*kw <= EB_FMAX_TAPS. */
  void (*maxpool_f32_tile)(const eb_conv_geom *g, const float *x, int x_row0, const float *thr, float *y,
                           uint64_t *sbits, int r0, int r1);
} eb_bin_kernels;

/* Variants this CPU can run, best last; ref is always first. Sets *count. */
const eb_bin_kernels *eb_kernels_list(int *count);
/* The best variant; EDGEBNN_KERNELS=<name> (environment) forces one this CPU
 * can run, e.g. ref or avx2; an unknown name falls back to the best. */
const eb_bin_kernels *eb_kernels_best(void);

/* Quantize f32 NHWC pixels [p0, p1) to K-bit code planes (eb_ref_kbit_conv2d_acc step 1). */

/* The variants (declared here so tests and benchmarks can name them). */
#define EB_DECLARE_BIN_VARIANT(isa)                                                                                   \
  void eb_##isa##_bconv_tile(const eb_conv_geom *g, int pad_value, const uint64_t *x, const void *packed,             \
                             const eb_bin_out *out, int r0, int r1, int oc0, int oc1);                               \
  void eb_##isa##_kbit_tile(const eb_conv_geom *g, int bits, const uint64_t *planes, const void *packed,              \
                            const eb_bin_out *out, int r0, int r1, int oc0, int oc1);                                \
  void eb_##isa##_horq_tile(const eb_conv_geom *g, int order, const float *x, const void *packed, int32_t *acc,       \
                            float *beta, void *scratch, int r0, int r1);                                             \
  void eb_##isa##_pack_f32(size_t rows, int c, const float *x, const float *thr, uint64_t *y);                        \
  void eb_##isa##_acc_to_bits(size_t rows, int c, const int32_t *acc, const int32_t *thr, const int32_t *dir,         \
                              uint64_t *y);                                                                          \
  void eb_##isa##_bmaxpool_tile(const eb_conv_geom *g, const uint64_t *x, uint64_t *y, int r0, int r1);             \
  void eb_##isa##_maxpool_f32_tile(const eb_conv_geom *g, const float *x, int x_row0, const float *thr, float *y,     \
                                   uint64_t *sbits, int r0, int r1);

EB_DECLARE_BIN_VARIANT(scalar)
#if defined(EB_HAVE_X86_KERNELS)
EB_DECLARE_BIN_VARIANT(popcnt)
EB_DECLARE_BIN_VARIANT(avx2)
EB_DECLARE_BIN_VARIANT(avx512bw)
EB_DECLARE_BIN_VARIANT(avx512)
#endif
#if defined(EB_HAVE_NEON_KERNELS)
EB_DECLARE_BIN_VARIANT(neon)
#endif

#endif /* EDGEBNN_KERNELS_H */
