/*
 * A float stem conv (few input channels, at most 64 output channels: ResNet's and
 * Bi-Real's 7x7 s2 3->64) for the banded stem (src/band.c), output rows at a time.
 *
 * Arithmetic: XNNPACK's f32 IGEMM, operation for operation: acc = bias, then one fused
 * multiply-add per tap and input channel in (ky, kx, c) order, taps in the padding
 * included as zeros, then max(min, acc) and min(max, acc). So every output is the
 * whole-map XNNPACK operator's bit for bit (tests/python/test_fusion.py checks it), and
 * the banded path can take either.
 *
 * Why not XNNPACK's: with 3 input channels its IGEMM reloads 7 row pointers for every 3
 * multiply-adds of a tap. In NHWC a window row's kw taps are kw*ic contiguous floats, so
 * here a pixel takes one pointer per window row (kh per pixel, not kh*kw), and the
 * register tile is 6 pixels x 64 channels (24 accumulators) instead of 7 x 16.
 */
#ifndef EDGEBNN_STEM_H
#define EDGEBNN_STEM_H

#include <stddef.h>

#include "ref/ref.h"

/* Output rows [y0, y1) of image 0 into y (row y0 first), x the whole input image. */
typedef void (*eb_stem_rows_fn)(const eb_conv_geom *g, const float *packed, const float *x, float lo, float hi,
                                float *y, int y0, int y1);

/* The kernel for this geometry on this CPU, or NULL (then XNNPACK runs the bands). */
eb_stem_rows_fn eb_stem_kernel(const eb_conv_geom *g);
/* Floats of the packed weights and bias. */
size_t eb_stem_packed_floats(const eb_conv_geom *g);
/* w [oc][kh][kw][ic], bias [oc] or NULL. */
void eb_stem_pack(const eb_conv_geom *g, const float *w, const float *bias, float *packed);

#endif
