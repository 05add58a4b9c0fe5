#include "float/stem.h"

#include <string.h>

#if defined(EB_HAVE_X86_KERNELS)
void eb_stem_rows_avx512(const eb_conv_geom *g, const float *packed, const float *x, float lo, float hi, float *y,
                         int y0, int y1);
#endif

/* A border pixel's window is copied to the stack: it must stay small. */
#define EB_STEM_MAX_K 512

eb_stem_rows_fn eb_stem_kernel(const eb_conv_geom *g) {
  const int k = g->kh * g->kw * g->ic;
  if (g->groups != 1 || g->dw != 1 || g->kh > 8 || g->oc % 16 || g->oc > 64 || k > EB_STEM_MAX_K || g->n != 1) return NULL;
#if defined(EB_HAVE_X86_KERNELS)
  if (__builtin_cpu_supports("avx512f")) return eb_stem_rows_avx512;
#endif
  return NULL;
}

size_t eb_stem_packed_floats(const eb_conv_geom *g) {
  return (size_t)(1 + g->kh * g->kw * g->ic) * (size_t)g->oc;
}

/* Row 0 the bias, then row 1 + (ky*kw + kx)*ic + c: the oc weights of that tap and channel,
 * the order XNNPACK packs them in. */
void eb_stem_pack(const eb_conv_geom *g, const float *w, const float *bias, float *packed) {
  const size_t k = (size_t)g->kh * (size_t)g->kw * (size_t)g->ic, oc = (size_t)g->oc;
  for (size_t o = 0; o < oc; o++) {
    packed[o] = bias ? bias[o] : 0.0f;
    for (size_t i = 0; i < k; i++) packed[(1 + i) * oc + o] = w[o * k + i];
  }
}
