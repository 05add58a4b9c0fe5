/*
 * Fused HetConv (float): one pass computes, per output pixel, the kh x kw part
 * on the C/P channels each filter sees and the 1x1 part on the rest, with the
 * contract of eb_ref_hetconv2d_f32 (ref/ref.h). Work is proportional to the
 * layer's FLOPs: no dense kernel with zeros, no second pass over the output.
 *
 * Filters o with the same o % P read the same kh x kw channel subset, so they
 * form a group whose weights are packed once (eb_hetconv_pack) into blocks of
 * EB_HETCONV_NR output channels: for each block, K = kh*kw*(C/P) + (C - C/P)
 * rows of NR floats (taps in (ky, kx, i) order, then the 1x1 channels in
 * increasing order) and one bias row. The kernel then runs a register-blocked
 * product of MR output pixels by NR filters per block, reading inputs through
 * per-tap row pointers (a zero row stands in for padding), so it never copies
 * patches.
 */
#ifndef EDGEBNN_HETCONV_H
#define EDGEBNN_HETCONV_H

#include <stddef.h>
#include <stdint.h>

#include "ref/ref.h"

#define EB_HETCONV_NR 16

/* Floats eb_hetconv_pack writes (64-byte aligned storage is best); in 64 bits, as
 * the blocks may need more than a 32-bit size_t can count. */
uint64_t eb_hetconv_packed_floats(const eb_conv_geom *g, int part);
void eb_hetconv_pack(const eb_conv_geom *g, int part, const float *w3, const float *w1, const float *bias,
                     float *packed);

/* Output rows [r0, r1) of the flattened n*oh rows. zero_row: g->ic zeros.
 * Rows are independent, so callers may split them over threads. */
void eb_hetconv_rows(const eb_conv_geom *g, int part, const float *x, const float *packed, const float *zero_row,
                     float out_min, float out_max, float *y, size_t r0, size_t r1);

/* Variant the dispatcher picks ("generic", "avx2", "avx512"), and the variants themselves. */
const char *eb_hetconv_variant(void);
void eb_hetconv_rows_generic(const eb_conv_geom *g, int part, const float *x, const float *packed,
                             const float *zero_row, float out_min, float out_max, float *y, size_t r0, size_t r1);
#if defined(EB_HAVE_X86_AVX2)
void eb_hetconv_rows_avx2(const eb_conv_geom *g, int part, const float *x, const float *packed,
                          const float *zero_row, float out_min, float out_max, float *y, size_t r0, size_t r1);
void eb_hetconv_rows_avx512(const eb_conv_geom *g, int part, const float *x, const float *packed,
                            const float *zero_row, float out_min, float out_max, float *y, size_t r0, size_t r1);
#endif

#endif
