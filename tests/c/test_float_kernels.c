/* Float kernel tests: every build of the fused HetConv kernel (baseline, AVX2+FMA and
 * AVX-512 where the CPU has them) against eb_ref_hetconv2d_f32 over many shapes: channel counts
 * 1..130 with every part that divides them, strides 1/2, padding, dilation, odd
 * kernels, activations. The fused kernel sums in the reference's order but may fuse
 * multiply-adds, so results agree to float rounding: |got - want| is bounded by a few
 * ulps of sum |x*w| (the error bound of a length-K dot product), not bit for bit. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "float/hetconv.h"
#include "ref/ref.h"

#include "check.h"

static uint64_t rng_state = UINT64_C(0x243f6a8885a308d3);
static double rnd01(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * UINT64_C(2685821657736338717)) >> 11) / 9007199254740992.0;
}
static float rndf(void) { return (float)(rnd01() * 2.0 - 1.0); }

typedef void (*rows_fn)(const eb_conv_geom *, int, const float *, const float *, const float *, float, float, float *,
                        size_t, size_t);

/* sum |x*w| + |bias| of every output (the reference run on absolute values), for the
 * rounding bound */
static float *abs_ref(const eb_conv_geom *g, int part, const float *x, const float *w3, const float *w1,
                      const float *bias) {
  size_t nx = (size_t)g->n * g->ih * g->iw * g->ic, n3w = (size_t)g->oc * g->kh * g->kw * (g->ic / part),
         n1w = (size_t)g->oc * (g->ic - g->ic / part);
  float *ax = malloc(sizeof(float) * nx), *a3 = malloc(sizeof(float) * (n3w + 1)),
        *a1 = malloc(sizeof(float) * (n1w + 1)), *ab = malloc(sizeof(float) * (size_t)g->oc);
  float *y = malloc(sizeof(float) * (size_t)g->n * g->oh * g->ow * g->oc);
  for (size_t i = 0; i < nx; i++) ax[i] = fabsf(x[i]);
  for (size_t i = 0; i < n3w; i++) a3[i] = fabsf(w3[i]);
  for (size_t i = 0; i < n1w; i++) a1[i] = fabsf(w1[i]);
  for (int j = 0; j < g->oc; j++) ab[j] = fabsf(bias[j]);
  eb_ref_hetconv2d_f32(g, part, ax, a3, a1, ab, -INFINITY, INFINITY, y);
  free(ax), free(a3), free(a1), free(ab);
  return y;
}

static void run_case(int n, int ih, int iw, int ic, int oc, int part, int k, int s, int d, int pad, int act,
                     rows_fn fn, const char *name) {
  const int span = (k - 1) * d + 1;
  eb_conv_geom g = {n, ih, iw, ic, (ih + 2 * pad - span) / s + 1, (iw + 2 * pad - span) / s + 1, oc, k, k, s, s, d, d,
                    pad, pad, 1};
  if (g.oh < 1 || g.ow < 1) return;
  const int n3 = ic / part;
  size_t nx = (size_t)n * ih * iw * ic, ny = (size_t)n * g.oh * g.ow * oc;
  size_t n3w = (size_t)oc * k * k * n3, n1w = (size_t)oc * (ic - n3);
  float *x = malloc(sizeof(float) * nx), *w3 = malloc(sizeof(float) * n3w), *w1 = malloc(sizeof(float) * (n1w + 1));
  float *bias = malloc(sizeof(float) * oc), *want = malloc(sizeof(float) * ny), *got = malloc(sizeof(float) * ny);
  float *zero = calloc((size_t)ic, sizeof(float));
  for (size_t i = 0; i < nx; i++) x[i] = rndf();
  for (size_t i = 0; i < n3w; i++) w3[i] = rndf();
  for (size_t i = 0; i < n1w; i++) w1[i] = rndf();
  for (int i = 0; i < oc; i++) bias[i] = rndf();
  const float lo = act ? 0.0f : -INFINITY, hi = act == 2 ? 6.0f : INFINITY;
  float *packed = aligned_alloc(64, ((size_t)eb_hetconv_packed_floats(&g, part) * sizeof(float) + 63) / 64 * 64);
  eb_hetconv_pack(&g, part, w3, w1, bias, packed);
  eb_ref_hetconv2d_f32(&g, part, x, w3, w1, bias, lo, hi, want);
  memset(got, 0xff, sizeof(float) * ny); /* NaN: any output the kernel skips fails */
  /* two row ranges, as threads would split them */
  size_t rows = (size_t)n * g.oh;
  fn(&g, part, x, packed, zero, lo, hi, got, 0, rows / 2);
  fn(&g, part, x, packed, zero, lo, hi, got, rows / 2, rows);
  size_t bad = 0, first = 0;
  float *mag = abs_ref(&g, part, x, w3, w1, bias);
  for (size_t i = 0; i < ny; i++) {
    double bound = 8.0 * (double)FLT_EPSILON * (double)mag[i];
    if (!(fabs((double)got[i] - (double)want[i]) <= bound) && bad++ == 0) first = i;
  }
  free(mag);
  CHECK(bad == 0, "%s n%d %dx%dx%d oc%d P%d k%d s%d d%d pad%d act%d: y[%zu] = %g, ref %g", name, n, ih, iw, ic, oc, part,
        k, s, d, pad, act, first, got[first], want[first]);
  free(x), free(w3), free(w1), free(bias), free(want), free(got), free(zero), free(packed);
}

int main(void) {
  struct variant {
    rows_fn fn;
    const char *name;
  } variants[3] = {{eb_hetconv_rows_generic, "generic"}};
  int nv = 1;
#if defined(EB_HAVE_X86_AVX2)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) variants[nv++] = (struct variant){eb_hetconv_rows_avx2, "avx2"};
  if (__builtin_cpu_supports("avx512f")) variants[nv++] = (struct variant){eb_hetconv_rows_avx512, "avx512"};
#endif
  static const int CH[] = {1, 3, 63, 64, 65, 130};
  static const int OC[] = {1, 5, 16, 17, 40};
  for (int v = 0; v < nv; v++) {
    for (size_t ci = 0; ci < sizeof CH / sizeof CH[0]; ci++) {
      const int ic = CH[ci];
      for (int part = 1; part <= ic && part <= 13; part++) {
        if (ic % part) continue;
        const int oc = OC[(ci + (size_t)part) % 5];
        run_case(1, 7, 6, ic, oc, part, 3, 1, 1, 1, 0, variants[v].fn, variants[v].name);
        run_case(2, 9, 5, ic, oc + 3, part, 3, 2, 1, 1, 1, variants[v].fn, variants[v].name);
        run_case(1, 8, 9, ic, oc, part, 3, 1, 2, 2, 2, variants[v].fn, variants[v].name);
        run_case(1, 6, 7, ic, oc, part, 5, 2, 1, 0, 0, variants[v].fn, variants[v].name);
        run_case(1, 5, 5, ic, oc, part, 1, 1, 1, 0, 0, variants[v].fn, variants[v].name);
        run_case(1, 4, 4, ic, oc, part, 3, 1, 1, 2, 0, variants[v].fn, variants[v].name); /* centre in the padding */
      }
    }
  }
  printf("test_float_kernels (%s): %d passed, %d failed\n", eb_hetconv_variant(), checks - failures, failures);
  return failures != 0;
}
