/* Fused HetConv: weight packing, the baseline build of the kernel and the
 * run-time pick of the widest build this CPU runs. */
#include "float/hetconv.h"

#include <stdlib.h>
#include <string.h>

#define EB_HETCONV_FN eb_hetconv_rows_generic
#include "float/hetconv_impl.h"

uint64_t eb_hetconv_packed_floats(const eb_conv_geom *g, int part) {
  const uint64_t n3 = (uint64_t)(g->ic / part), K = (uint64_t)g->kh * (uint64_t)g->kw * n3 + ((uint64_t)g->ic - n3);
  uint64_t blocks = 0;
  for (int grp = 0; grp < part; grp++) {
    const uint64_t ocg = (uint64_t)((g->oc - grp + part - 1) / part);
    blocks += (ocg + EB_HETCONV_NR - 1) / EB_HETCONV_NR;
  }
  return blocks * (K + 1) * EB_HETCONV_NR;
}

void eb_hetconv_pack(const eb_conv_geom *g, int part, const float *w3, const float *w1, const float *bias,
                     float *packed) {
  const int P = part, n3 = g->ic / P, n1 = g->ic - n3, taps = g->kh * g->kw;
  const size_t K = (size_t)taps * (size_t)n3 + (size_t)n1;
  float *wp = packed;
  memset(packed, 0, (size_t)eb_hetconv_packed_floats(g, part) * sizeof *packed);
  for (int grp = 0; grp < P; grp++) {
    const int ocg = (g->oc - grp + P - 1) / P;
    for (int b0 = 0; b0 < ocg; b0 += EB_HETCONV_NR, wp += (K + 1) * EB_HETCONV_NR) {
      for (int j = 0; j < EB_HETCONV_NR && b0 + j < ocg; j++) {
        const int o = grp + (b0 + j) * P;
        const float *w3o = w3 + (size_t)o * (size_t)taps * (size_t)n3;
        for (size_t k = 0; k < (size_t)taps * (size_t)n3; k++) wp[k * EB_HETCONV_NR + (size_t)j] = w3o[k];
        /* w1 is already in increasing channel order, which is the kernel's order */
        for (int i = 0; i < n1; i++)
          wp[((size_t)taps * (size_t)n3 + (size_t)i) * EB_HETCONV_NR + (size_t)j] = w1[(size_t)o * (size_t)n1 + (size_t)i];
        wp[K * EB_HETCONV_NR + (size_t)j] = bias ? bias[o] : 0.0f;
      }
    }
  }
}

typedef void (*rows_fn)(const eb_conv_geom *, int, const float *, const float *, const float *, float, float, float *,
                        size_t, size_t);

static rows_fn pick(const char **name) {
#if defined(EB_HAVE_X86_AVX2) && (defined(__GNUC__) || defined(__clang__))
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) {
    *name = "avx512";
    return eb_hetconv_rows_avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    *name = "avx2";
    return eb_hetconv_rows_avx2;
  }
#endif
  *name = "generic";
  return eb_hetconv_rows_generic;
}

const char *eb_hetconv_variant(void) {
  const char *name;
  (void)pick(&name);
  return name;
}

void eb_hetconv_rows(const eb_conv_geom *g, int part, const float *x, const float *packed, const float *zero_row,
                     float out_min, float out_max, float *y, size_t r0, size_t r1) {
  /* threads may race to fill it; they all store the same pointer, atomically */
  static rows_fn cached;
  rows_fn fn = __atomic_load_n(&cached, __ATOMIC_RELAXED);
  if (!fn) {
    const char *name;
    fn = pick(&name);
    __atomic_store_n(&cached, fn, __ATOMIC_RELAXED);
  }
  fn(g, part, x, packed, zero_row, out_min, out_max, y, r0, r1);
}
