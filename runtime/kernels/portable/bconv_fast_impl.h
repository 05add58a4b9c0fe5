/*
 * Body of the fast xor-popcount conv and FC, same contract as eb_ref_bconv2d_acc
 * and eb_ref_bfc_acc (ref/ref.h). Included by one .c file per instruction set
 * with EB_FAST(name) defined, so the identical C is compiled once plain and once
 * with e.g. -mpopcnt, and the dispatcher picks at run time.
 *
 * Why it is faster than the reference:
 *   - four output channels per pass share every load of the input words;
 *   - interior pixels (window fully inside the input) skip all bounds checks,
 *     and with dilation 1 the kw taps of a window row are one contiguous run
 *     of kw*words(ic) words in both the input and the filter;
 *   - the result is kh*kw*ic - 2*popcount, computed once per channel.
 * Border pixels take the reference's per-tap path, so padding stays exact.
 */
#include "ref/ref.h"

static inline int EB_FAST(popcount)(uint64_t v) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_popcountll((unsigned long long)v);
#else
  v = v - ((v >> 1) & UINT64_C(0x5555555555555555));
  v = (v & UINT64_C(0x3333333333333333)) + ((v >> 2) & UINT64_C(0x3333333333333333));
  v = (v + (v >> 4)) & UINT64_C(0x0f0f0f0f0f0f0f0f);
  return (int)((v * UINT64_C(0x0101010101010101)) >> 56);
#endif
}

/* One output pixel whose window may leave the input: per-tap checks, as in ref. */
static void EB_FAST(border_pixel)(const eb_conv_geom *g, int pad_value, const uint64_t *x, const uint64_t *w, int n,
                                  int oy, int ox, int32_t *ap) {
  const size_t wpr = eb_words((size_t)g->ic), wpf = (size_t)g->kh * (size_t)g->kw * wpr;
  for (int o = 0; o < g->oc; ++o) {
    const uint64_t *wo = w + (size_t)o * wpf;
    int32_t sum = 0;
    for (int ky = 0; ky < g->kh; ++ky) {
      const int iy = oy * g->sh - g->pt + ky * g->dh;
      const int row_in = iy >= 0 && iy < g->ih;
      for (int kx = 0; kx < g->kw; ++kx) {
        const int ix = ox * g->sw - g->pl + kx * g->dw;
        const uint64_t *wp = wo + ((size_t)ky * (size_t)g->kw + (size_t)kx) * wpr;
        int pc = 0;
        if (row_in && ix >= 0 && ix < g->iw) {
          const uint64_t *xp = x + (((size_t)n * (size_t)g->ih + (size_t)iy) * (size_t)g->iw + (size_t)ix) * wpr;
          for (size_t k = 0; k < wpr; ++k) pc += EB_FAST(popcount)(xp[k] ^ wp[k]);
        } else if (pad_value) {
          for (size_t k = 0; k < wpr; ++k) pc += EB_FAST(popcount)(wp[k]); /* tap reads +1: x^w = w */
        } else {
          continue; /* zero padding contributes exactly 0 */
        }
        sum += g->ic - 2 * pc;
      }
    }
    ap[o] = sum;
  }
}

/* One output pixel whose window lies inside the input. The window is kh rows of
 * `segs` runs of `len` words; run s of row ky starts at xrow[ky] + s*xstep in the
 * input and at (ky*segs + s)*len in the filter. */
static void EB_FAST(interior_pixel)(const eb_conv_geom *g, const uint64_t *x0, size_t xrow, size_t xstep, int segs,
                                    size_t len, const uint64_t *w, int32_t *ap) {
  const size_t wpf = (size_t)g->kh * (size_t)segs * len;
  const int32_t full = g->kh * g->kw * g->ic;
  int o = 0;
  for (; o + 4 <= g->oc; o += 4) {
    const uint64_t *w0 = w + (size_t)o * wpf, *w1 = w0 + wpf, *w2 = w1 + wpf, *w3 = w2 + wpf;
    int p0 = 0, p1 = 0, p2 = 0, p3 = 0;
    size_t wk = 0;
    for (int ky = 0; ky < g->kh; ++ky) {
      for (int s = 0; s < segs; ++s) {
        const uint64_t *xp = x0 + (size_t)ky * xrow + (size_t)s * xstep;
        for (size_t k = 0; k < len; ++k, ++wk) {
          const uint64_t v = xp[k];
          p0 += EB_FAST(popcount)(v ^ w0[wk]);
          p1 += EB_FAST(popcount)(v ^ w1[wk]);
          p2 += EB_FAST(popcount)(v ^ w2[wk]);
          p3 += EB_FAST(popcount)(v ^ w3[wk]);
        }
      }
    }
    ap[o] = full - 2 * p0;
    ap[o + 1] = full - 2 * p1;
    ap[o + 2] = full - 2 * p2;
    ap[o + 3] = full - 2 * p3;
  }
  for (; o < g->oc; ++o) {
    const uint64_t *wo = w + (size_t)o * wpf;
    int pc = 0;
    size_t wk = 0;
    for (int ky = 0; ky < g->kh; ++ky)
      for (int s = 0; s < segs; ++s) {
        const uint64_t *xp = x0 + (size_t)ky * xrow + (size_t)s * xstep;
        for (size_t k = 0; k < len; ++k, ++wk) pc += EB_FAST(popcount)(xp[k] ^ wo[wk]);
      }
    ap[o] = full - 2 * pc;
  }
}

/* First output index whose window starts at or after the input's start, and one
 * past the last whose window ends inside it (lo >= hi: no interior outputs). */
static void EB_FAST(interior_range)(int out, int in, int stride, int pad, int span, int *lo, int *hi) {
  const int a = (pad + stride - 1) / stride; /* o*stride - pad >= 0 */
  const int room = in + pad - span;          /* o*stride - pad + span <= in */
  const int b = room < 0 ? 0 : room / stride + 1;
  *lo = a < out ? a : out;
  *hi = b < out ? b : out;
}

void EB_FAST(bconv2d_acc)(const eb_conv_geom *g, int pad_value, const uint64_t *x, const uint64_t *w, int32_t *acc) {
  const size_t wpr = eb_words((size_t)g->ic);
  const int span_h = (g->kh - 1) * g->dh + 1, span_w = (g->kw - 1) * g->dw + 1;
  int y_lo, y_hi, x_lo, x_hi;
  EB_FAST(interior_range)(g->oh, g->ih, g->sh, g->pt, span_h, &y_lo, &y_hi);
  EB_FAST(interior_range)(g->ow, g->iw, g->sw, g->pl, span_w, &x_lo, &x_hi);
  /* dilation 1: a window row is one run of kw taps; else kw runs of one tap */
  const int segs = g->dw == 1 ? 1 : g->kw;
  const size_t len = g->dw == 1 ? (size_t)g->kw * wpr : wpr;
  const size_t xstep = (size_t)g->dw * wpr, xrow = (size_t)g->dh * (size_t)g->iw * wpr;
  for (int n = 0; n < g->n; ++n) {
    for (int oy = 0; oy < g->oh; ++oy) {
      const int row_interior = oy >= y_lo && oy < y_hi;
      for (int ox = 0; ox < g->ow; ++ox) {
        int32_t *ap = acc + (((size_t)n * (size_t)g->oh + (size_t)oy) * (size_t)g->ow + (size_t)ox) * (size_t)g->oc;
        if (row_interior && ox >= x_lo && ox < x_hi) {
          const int iy = oy * g->sh - g->pt, ix = ox * g->sw - g->pl;
          const uint64_t *x0 = x + (((size_t)n * (size_t)g->ih + (size_t)iy) * (size_t)g->iw + (size_t)ix) * wpr;
          EB_FAST(interior_pixel)(g, x0, xrow, xstep, segs, len, w, ap);
        } else {
          EB_FAST(border_pixel)(g, pad_value, x, w, n, oy, ox, ap);
        }
      }
    }
  }
}

void EB_FAST(bfc_acc)(int n, int k, int o, const uint64_t *x, const uint64_t *w, int32_t *acc) {
  const size_t wpr = eb_words((size_t)k);
  for (int r = 0; r < n; ++r) {
    const uint64_t *xr = x + (size_t)r * wpr;
    int32_t *ar = acc + (size_t)r * (size_t)o;
    int j = 0;
    for (; j + 4 <= o; j += 4) {
      const uint64_t *w0 = w + (size_t)j * wpr, *w1 = w0 + wpr, *w2 = w1 + wpr, *w3 = w2 + wpr;
      int p0 = 0, p1 = 0, p2 = 0, p3 = 0;
      for (size_t i = 0; i < wpr; ++i) {
        const uint64_t v = xr[i];
        p0 += EB_FAST(popcount)(v ^ w0[i]);
        p1 += EB_FAST(popcount)(v ^ w1[i]);
        p2 += EB_FAST(popcount)(v ^ w2[i]);
        p3 += EB_FAST(popcount)(v ^ w3[i]);
      }
      ar[j] = k - 2 * p0;
      ar[j + 1] = k - 2 * p1;
      ar[j + 2] = k - 2 * p2;
      ar[j + 3] = k - 2 * p3;
    }
    for (; j < o; ++j) {
      const uint64_t *wj = w + (size_t)j * wpr;
      int pc = 0;
      for (size_t i = 0; i < wpr; ++i) pc += EB_FAST(popcount)(xr[i] ^ wj[i]);
      ar[j] = k - 2 * pc;
    }
  }
}
