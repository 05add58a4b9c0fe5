/* Step 1 of the K-bit (HWGQ) conv, split out so the op layer can spread it over
 * threads: the same float arithmetic as eb_ref_kbit_conv2d_acc, so the codes
 * (and the planes) match the reference bit for bit. */
#include <math.h>

#include "kernels.h"

void eb_kbit_planes(const eb_conv_geom *g, int bits, float step, const float *x, uint64_t *planes, size_t p0,
                    size_t p1) {
  const size_t wpr = eb_words((size_t)g->ic), wpp = (size_t)bits * wpr;
  const float qmax = (float)((1u << (unsigned)bits) - 1u);
  for (size_t p = p0; p < p1; ++p) {
    uint64_t *pp = planes + p * wpp;
    const float *xp = x + p * (size_t)g->ic;
    for (size_t k = 0; k < wpp; ++k) pp[k] = 0;
    for (int c = 0; c < g->ic; ++c) {
      float q = floorf(xp[c] / step + 0.5f);
      if (!(q > 0.0f)) q = 0.0f; /* also maps NaN to code 0 */
      if (q > qmax) q = qmax;
      const unsigned code = (unsigned)q;
      for (int j = 0; j < bits; ++j)
        if ((code >> (unsigned)j) & 1u) pp[(size_t)j * wpr + (size_t)(c / 64)] |= (uint64_t)1 << (unsigned)(c % 64);
    }
  }
}
