/* Kernel tests: every binary conv/FC variant the CPU can run (eb_kernels_list)
 * must equal the reference bit for bit on random shapes, and the reference must
 * equal a naive +-1 integer loop written here from the contract in ref/ref.h.
 * Shapes are small so the test also runs quickly under qemu (aarch64, armv7). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "ref/ref.h"

#include "check.h"

static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);
static uint64_t rnd64(void) { /* xorshift64*: deterministic across targets */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * UINT64_C(2685821657736338717);
}
static int rnd(int n) { return (int)(rnd64() % (uint64_t)n); }

/* Random rows of c +-1 values as int8 and as BIT1 words (padding bits zero). */
static void random_bits(size_t rows, int c, int8_t *v, uint64_t *packed) {
  const size_t wpr = eb_words((size_t)c);
  memset(packed, 0, rows * wpr * sizeof *packed);
  for (size_t r = 0; r < rows; r++)
    for (int j = 0; j < c; j++) {
      const int neg = (int)(rnd64() >> 63);
      v[r * (size_t)c + (size_t)j] = neg ? -1 : 1;
      if (neg) packed[r * wpr + (size_t)j / 64] |= (uint64_t)1 << (unsigned)(j % 64);
    }
}

/* The contract of eb_ref_bconv2d_acc, one multiply at a time. */
static void naive_bconv(const eb_conv_geom *g, int pad_value, const int8_t *x, const int8_t *w, int32_t *acc) {
  for (int n = 0; n < g->n; n++)
    for (int oy = 0; oy < g->oh; oy++)
      for (int ox = 0; ox < g->ow; ox++)
        for (int o = 0; o < g->oc; o++) {
          int32_t s = 0;
          for (int ky = 0; ky < g->kh; ky++)
            for (int kx = 0; kx < g->kw; kx++) {
              const int iy = oy * g->sh - g->pt + ky * g->dh, ix = ox * g->sw - g->pl + kx * g->dw;
              const int in = iy >= 0 && iy < g->ih && ix >= 0 && ix < g->iw;
              if (!in && !pad_value) continue;
              for (int c = 0; c < g->ic; c++) {
                const int xv = in ? x[(((size_t)n * g->ih + iy) * g->iw + ix) * g->ic + c] : 1;
                s += xv * w[(((size_t)o * g->kh + ky) * g->kw + kx) * g->ic + c];
              }
            }
          acc[(((size_t)n * g->oh + oy) * g->ow + ox) * g->oc + o] = s;
        }
}

static const int CHANNELS[] = {1, 3, 63, 64, 65, 130, 257};
#define N_CH ((int)(sizeof CHANNELS / sizeof CHANNELS[0]))

static void test_bconv_case(int ic, int stride, int dil, int pad_value) {
  eb_conv_geom g;
  memset(&g, 0, sizeof g);
  g.n = 1 + rnd(2);
  g.ic = ic;
  g.oc = 1 + rnd(9); /* covers the 4-channel blocks and their tails */
  g.kh = 1 + rnd(3);
  g.kw = 1 + rnd(3);
  g.sh = stride;
  g.sw = 1 + rnd(2); /* mixed strides too */
  g.dh = dil;
  g.dw = 1 + rnd(2);
  g.groups = 1;
  const int span_h = (g.kh - 1) * g.dh + 1, span_w = (g.kw - 1) * g.dw + 1;
  /* asymmetric pads, each below the window span (what the op layer allows) */
  g.pt = rnd(span_h);
  g.pl = rnd(span_w);
  const int pb = rnd(span_h), pr = rnd(span_w);
  g.ih = 1 + rnd(8);
  g.iw = 1 + rnd(8);
  if (g.ih + g.pt + pb < span_h) g.ih = span_h;
  if (g.iw + g.pl + pr < span_w) g.iw = span_w;
  g.oh = (g.ih + g.pt + pb - span_h) / g.sh + 1;
  g.ow = (g.iw + g.pl + pr - span_w) / g.sw + 1;

  const size_t wpr = eb_words((size_t)ic);
  const size_t xpix = (size_t)g.n * g.ih * g.iw, taps = (size_t)g.oc * g.kh * g.kw;
  const size_t nacc = (size_t)g.n * g.oh * g.ow * g.oc;
  int8_t *xv = malloc(xpix * ic), *wv = malloc(taps * ic);
  uint64_t *xb = malloc(xpix * wpr * 8), *wb = malloc(taps * wpr * 8);
  int32_t *want = malloc(nacc * 4), *ref = malloc(nacc * 4), *got = malloc(nacc * 4);
  random_bits(xpix, ic, xv, xb);
  random_bits(taps, ic, wv, wb);
  naive_bconv(&g, pad_value, xv, wv, want);
  memset(ref, 0x5a, nacc * 4);
  eb_ref_bconv2d_acc(&g, pad_value, xb, wb, ref);
  CHECK(!memcmp(ref, want, nacc * 4), "ref bconv != naive: ic=%d k=%dx%d s=%d,%d d=%d,%d pad=%d,%d,%d,%d pv=%d", ic,
        g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl, pb, pr, pad_value);
  int nk;
  const eb_bin_kernels *ks = eb_kernels_list(&nk);
  for (int i = 1; i < nk; i++) {
    memset(got, 0xa5, nacc * 4); /* a sentinel: unwritten outputs cannot match by luck */
    ks[i].bconv2d_acc(&g, pad_value, xb, wb, got);
    CHECK(!memcmp(got, ref, nacc * 4), "%s bconv != ref: n=%d ic=%d oc=%d in=%dx%d k=%dx%d s=%d,%d d=%d,%d pad=%d,%d,%d,%d pv=%d",
          ks[i].name, g.n, ic, g.oc, g.ih, g.iw, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl, pb, pr, pad_value);
  }
  free(xv); free(wv); free(xb); free(wb); free(want); free(ref); free(got);
}

static void test_bfc_case(int k) {
  const int n = 1 + rnd(3), o = 1 + rnd(11);
  const size_t wpr = eb_words((size_t)k);
  int8_t *xv = malloc((size_t)n * k), *wv = malloc((size_t)o * k);
  uint64_t *xb = malloc(n * wpr * 8), *wb = malloc(o * wpr * 8);
  int32_t *want = malloc((size_t)n * o * 4), *ref = malloc((size_t)n * o * 4), *got = malloc((size_t)n * o * 4);
  random_bits((size_t)n, k, xv, xb);
  random_bits((size_t)o, k, wv, wb);
  for (int r = 0; r < n; r++)
    for (int j = 0; j < o; j++) {
      int32_t s = 0;
      for (int i = 0; i < k; i++) s += xv[(size_t)r * k + i] * wv[(size_t)j * k + i];
      want[r * o + j] = s;
    }
  eb_ref_bfc_acc(n, k, o, xb, wb, ref);
  CHECK(!memcmp(ref, want, (size_t)n * o * 4), "ref bfc != naive: n=%d k=%d o=%d", n, k, o);
  int nk;
  const eb_bin_kernels *ks = eb_kernels_list(&nk);
  for (int i = 1; i < nk; i++) {
    memset(got, 0xa5, (size_t)n * o * 4);
    ks[i].bfc_acc(n, k, o, xb, wb, got);
    CHECK(!memcmp(got, ref, (size_t)n * o * 4), "%s bfc != ref: n=%d k=%d o=%d", ks[i].name, n, k, o);
  }
  free(xv); free(wv); free(xb); free(wb); free(want); free(ref); free(got);
}

int main(void) {
  int nk;
  const eb_bin_kernels *ks = eb_kernels_list(&nk);
  printf("kernels:");
  for (int i = 0; i < nk; i++) printf(" %s", ks[i].name);
  printf(" (best: %s)\n", eb_kernels_best()->name);
  CHECK(nk >= 2 && !strcmp(ks[0].name, "ref"), "the list must start with ref and hold a fast variant");
  for (int c = 0; c < N_CH; c++)
    for (int stride = 1; stride <= 2; stride++)
      for (int dil = 1; dil <= 2; dil++)
        for (int pv = 0; pv <= 1; pv++)
          for (int rep = 0; rep < 3; rep++) test_bconv_case(CHANNELS[c], stride, dil, pv);
  for (int c = 0; c < N_CH; c++)
    for (int rep = 0; rep < 4; rep++) test_bfc_case(CHANNELS[c] * (1 + rep % 2));
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures != 0;
}
