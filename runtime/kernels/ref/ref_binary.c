/*
 * Reference binary kernels: xor-popcount conv / FC on BIT1 tensors, output
 * stages (float and thresholded bits), bit-serial K-bit (HWGQ) and HORQ
 * convolutions, sign-packing, unpacking and binary max-pool.
 *
 * BIT1: element j of a row is bit j%64 of word j/64; bit 1 = -1, bit 0 = +1,
 * padding bits zero. For a row of c elements, dot(a, b) = c - 2*popcount(a^b)
 * (padding bits are zero in both, so they never count).
 */
#include <math.h>
#include <string.h>

#include "ref.h"

/* The float output stage is m*acc + b rounded twice, on every target and
 * compiler: the fast kernels (portable/bin_impl.h) match it bit for bit. GCC
 * does not contract in ISO C mode; clang does unless told. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

static int popcount64(uint64_t v) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_popcountll((unsigned long long)v);
#else
  v = v - ((v >> 1) & UINT64_C(0x5555555555555555));
  v = (v & UINT64_C(0x3333333333333333)) +
      ((v >> 2) & UINT64_C(0x3333333333333333));
  v = (v + (v >> 4)) & UINT64_C(0x0f0f0f0f0f0f0f0f);
  return (int)((v * UINT64_C(0x0101010101010101)) >> 56);
#endif
}

static float clampf(float v, float lo, float hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

static uint64_t bit(int j) { return (uint64_t)1 << (unsigned)(j % 64); }

/* Offset of pixel (n, y, x) in an NHWC tensor, in pixels. */
static size_t pix(int n, int y, int x, int h, int w) {
  return ((size_t)n * (size_t)h + (size_t)y) * (size_t)w + (size_t)x;
}

/* ---- xor-popcount conv and FC ----------------------------------------- */

/* Mismatches between bits [c0, c0+n) of a pixel row and the n bits of a filter
 * tap row: a group's channels need not start on a word, so each x word is
 * funnel-shifted out of two, never reading past the group's last word. */
static int xor_popcount_range(const uint64_t *xp, size_t c0, const uint64_t *wp, size_t n) {
  int pc = 0;
  for (size_t k = 0; 64 * k < n; ++k) {
    const size_t pos = c0 + 64 * k, need = n - 64 * k < 64 ? n - 64 * k : 64;
    const unsigned sh = (unsigned)(pos % 64);
    uint64_t v = xp[pos / 64] >> sh;
    if (sh && sh + need > 64) v |= xp[pos / 64 + 1] << (64u - sh);
    const uint64_t mask = need == 64 ? ~(uint64_t)0 : (((uint64_t)1 << need) - 1);
    pc += popcount64((v ^ wp[k]) & mask);
  }
  return pc;
}

void eb_ref_bconv2d_acc(const eb_conv_geom *g, int pad_value,
                        const uint64_t *x, const uint64_t *w, int32_t *acc) {
  const int groups = g->groups > 1 ? g->groups : 1;
  const int icg = g->ic / groups, ocg = g->oc / groups;
  const size_t xpr = eb_words((size_t)g->ic); /* words per input pixel */
  const size_t wpr = eb_words((size_t)icg);   /* words per filter tap row */
  const size_t wpf = (size_t)g->kh * (size_t)g->kw * wpr; /* words per filter */
  for (int n = 0; n < g->n; ++n) {
    for (int oy = 0; oy < g->oh; ++oy) {
      for (int ox = 0; ox < g->ow; ++ox) {
        int32_t *ap = acc + pix(n, oy, ox, g->oh, g->ow) * (size_t)g->oc;
        for (int o = 0; o < g->oc; ++o) {
          const uint64_t *wo = w + (size_t)o * wpf;
          const size_t c0 = (size_t)(o / ocg) * (size_t)icg; /* the group's first input channel */
          int32_t sum = 0;
          for (int ky = 0; ky < g->kh; ++ky) {
            const int iy = oy * g->sh - g->pt + ky * g->dh;
            const int row_in = iy >= 0 && iy < g->ih;
            for (int kx = 0; kx < g->kw; ++kx) {
              const int ix = ox * g->sw - g->pl + kx * g->dw;
              const uint64_t *wp =
                  wo + ((size_t)ky * (size_t)g->kw + (size_t)kx) * wpr;
              int pc = 0;
              if (row_in && ix >= 0 && ix < g->iw) {
                const uint64_t *xp = x + pix(n, iy, ix, g->ih, g->iw) * xpr;
                pc = xor_popcount_range(xp, c0, wp, (size_t)icg);
              } else if (pad_value) {
                /* One padding: the tap reads +1 (all bits 0), so x^w = w. */
                for (size_t k = 0; k < wpr; ++k) pc += popcount64(wp[k]);
              } else {
                continue; /* zero padding: the tap contributes exactly 0 */
              }
              sum += icg - 2 * pc;
            }
          }
          ap[o] = sum;
        }
      }
    }
  }
}

void eb_ref_bfc_acc(int n, int k, int o, const uint64_t *x, const uint64_t *w,
                    int32_t *acc) {
  const size_t wpr = eb_words((size_t)k);
  for (int r = 0; r < n; ++r) {
    const uint64_t *xr = x + (size_t)r * wpr;
    for (int j = 0; j < o; ++j) {
      const uint64_t *wj = w + (size_t)j * wpr;
      int pc = 0;
      for (size_t i = 0; i < wpr; ++i) pc += popcount64(xr[i] ^ wj[i]);
      acc[(size_t)r * (size_t)o + (size_t)j] = k - 2 * pc;
    }
  }
}

/* ---- output stages ------------------------------------------------------ */

void eb_ref_acc_to_f32(size_t rows, int c, const int32_t *acc,
                       const float *mult, const float *bias, float out_min,
                       float out_max, float *y) {
  for (size_t r = 0; r < rows; ++r) {
    for (int j = 0; j < c; ++j) {
      const size_t i = r * (size_t)c + (size_t)j;
      const float m = mult ? mult[j] : 1.0f;
      const float b = bias ? bias[j] : 0.0f;
      y[i] = clampf(m * (float)acc[i] + b, out_min, out_max);
    }
  }
}

void eb_ref_acc_to_bits(size_t rows, int c, const int32_t *acc,
                        const int32_t *thr, const int32_t *dir, uint64_t *y) {
  const size_t wpr = eb_words((size_t)c);
  for (size_t r = 0; r < rows; ++r) {
    uint64_t *yr = y + r * wpr;
    for (size_t k = 0; k < wpr; ++k) yr[k] = 0;
    for (int j = 0; j < c; ++j) {
      const int32_t a = acc[r * (size_t)c + (size_t)j];
      const int neg = (dir[j] > 0 && a < thr[j]) || (dir[j] < 0 && a > thr[j]);
      if (neg) yr[j / 64] |= bit(j);
    }
  }
}

/* ---- K-bit activations (HWGQ), bit-serial ------------------------------- */

/* Scratch: the whole input as bit-planes, [n][ih][iw][bits][words(ic)]. */
size_t eb_ref_kbit_scratch(const eb_conv_geom *g, int bits) {
  return (size_t)g->n * (size_t)g->ih * (size_t)g->iw * (size_t)bits *
         eb_words((size_t)g->ic) * sizeof(uint64_t);
}

void eb_ref_kbit_planes(const eb_conv_geom *g, int bits, float step, const float *x, uint64_t *planes,
                        size_t p0, size_t p1) {
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
        if ((code >> (unsigned)j) & 1u)
          pp[(size_t)j * wpr + (size_t)(c / 64)] |= bit(c);
    }
  }
}

void eb_ref_kbit_conv2d_acc(const eb_conv_geom *g, int bits, float step,
                            const float *x, const uint64_t *w, int32_t *acc,
                            void *scratch) {
  const size_t wpr = eb_words((size_t)g->ic);
  const size_t wpp = (size_t)bits * wpr; /* plane words per input pixel */
  const size_t wpf = (size_t)g->kh * (size_t)g->kw * wpr;
  const size_t npix = (size_t)g->n * (size_t)g->ih * (size_t)g->iw;
  uint64_t *planes = (uint64_t *)scratch;

  /* 1. Quantize to codes and scatter code bit j into plane j. */
  eb_ref_kbit_planes(g, bits, step, x, planes, 0, npix);

  /* 2. Per plane j: popcount(a_j & w+) - popcount(a_j & w-), weighted 2^j.
   *    w- is the weight bit (1 = -1); w+ is its complement. Padding bits of
   *    a_j are zero, so the complement's padding bits never count. Taps in
   *    the padding hold code 0 and are skipped. */
  for (int n = 0; n < g->n; ++n) {
    for (int oy = 0; oy < g->oh; ++oy) {
      for (int ox = 0; ox < g->ow; ++ox) {
        int32_t *ap = acc + pix(n, oy, ox, g->oh, g->ow) * (size_t)g->oc;
        for (int o = 0; o < g->oc; ++o) {
          const uint64_t *wo = w + (size_t)o * wpf;
          int32_t sum = 0;
          for (int ky = 0; ky < g->kh; ++ky) {
            const int iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->ih) continue;
            for (int kx = 0; kx < g->kw; ++kx) {
              const int ix = ox * g->sw - g->pl + kx * g->dw;
              if (ix < 0 || ix >= g->iw) continue;
              const uint64_t *wp =
                  wo + ((size_t)ky * (size_t)g->kw + (size_t)kx) * wpr;
              const uint64_t *xp = planes + pix(n, iy, ix, g->ih, g->iw) * wpp;
              for (int j = 0; j < bits; ++j) {
                const uint64_t *aj = xp + (size_t)j * wpr;
                int d = 0;
                for (size_t k = 0; k < wpr; ++k)
                  d += popcount64(aj[k] & ~wp[k]) - popcount64(aj[k] & wp[k]);
                sum += d * (int32_t)(1u << (unsigned)j);
              }
            }
          }
          ap[o] = sum;
        }
      }
    }
  }
}

/* ---- HORQ --------------------------------------------------------------- */

/* Scratch, per output pixel (reused): order packed sign planes of the patch,
 * [order][kh*kw][words(ic)] uint64, then the residual patch, kh*kw*ic float. */
size_t eb_ref_horq_scratch(const eb_conv_geom *g, int order) {
  const size_t taps = (size_t)g->kh * (size_t)g->kw;
  return (size_t)order * taps * eb_words((size_t)g->ic) * sizeof(uint64_t) +
         taps * (size_t)g->ic * sizeof(float);
}

void eb_ref_horq_conv2d_acc(const eb_conv_geom *g, int order, const float *x,
                            const uint64_t *w, int32_t *acc, float *beta,
                            void *scratch) {
  const size_t wpr = eb_words((size_t)g->ic);
  const size_t taps = (size_t)g->kh * (size_t)g->kw;
  const size_t wpf = taps * wpr;                 /* words per patch plane */
  const size_t plen = taps * (size_t)g->ic;      /* patch length */
  const int32_t plen_i = (int32_t)plen;
  uint64_t *hb = (uint64_t *)scratch;            /* [order][taps][wpr] */
  float *r = (float *)(hb + (size_t)order * wpf); /* [taps][ic] */

  for (int n = 0; n < g->n; ++n) {
    for (int oy = 0; oy < g->oh; ++oy) {
      for (int ox = 0; ox < g->ow; ++ox) {
        const size_t p = pix(n, oy, ox, g->oh, g->ow);

        /* 1. Gather the zero-padded patch, tap order (ky, kx, c). */
        for (int ky = 0; ky < g->kh; ++ky) {
          const int iy = oy * g->sh - g->pt + ky * g->dh;
          for (int kx = 0; kx < g->kw; ++kx) {
            const int ix = ox * g->sw - g->pl + kx * g->dw;
            float *rp =
                r + ((size_t)ky * (size_t)g->kw + (size_t)kx) * (size_t)g->ic;
            if (iy >= 0 && iy < g->ih && ix >= 0 && ix < g->iw) {
              const float *xp = x + pix(n, iy, ix, g->ih, g->iw) * (size_t)g->ic;
              for (int c = 0; c < g->ic; ++c) rp[c] = xp[c];
            } else {
              for (int c = 0; c < g->ic; ++c) rp[c] = 0.0f;
            }
          }
        }

        /* 2. Residual expansion: h_i = sign(r), beta_i = mean|r|,
         *    r -= beta_i * h_i; h_i packed per tap like the weights. */
        for (int i = 0; i < order; ++i) {
          uint64_t *hi = hb + (size_t)i * wpf;
          float s = 0.0f;
          for (size_t t = 0; t < plen; ++t) s += fabsf(r[t]);
          const float b = s / (float)plen;
          for (size_t k = 0; k < wpf; ++k) hi[k] = 0;
          for (size_t t = 0; t < taps; ++t) {
            float *rp = r + t * (size_t)g->ic;
            uint64_t *hp = hi + t * wpr;
            for (int c = 0; c < g->ic; ++c) {
              if (rp[c] < 0.0f) {
                hp[c / 64] |= bit(c);
                rp[c] = rp[c] + b; /* r - beta * (-1) */
              } else {
                rp[c] = rp[c] - b; /* r - beta * (+1) */
              }
            }
          }
          beta[p * (size_t)order + (size_t)i] = b;
        }

        /* 3. One xor-popcount pass per order on the same packed weights. */
        for (int i = 0; i < order; ++i) {
          const uint64_t *hi = hb + (size_t)i * wpf;
          int32_t *ap = acc + (p * (size_t)order + (size_t)i) * (size_t)g->oc;
          for (int o = 0; o < g->oc; ++o) {
            const uint64_t *wo = w + (size_t)o * wpf;
            int32_t pc = 0;
            for (size_t k = 0; k < wpf; ++k) pc += popcount64(hi[k] ^ wo[k]);
            ap[o] = plen_i - 2 * pc;
          }
        }
      }
    }
  }
}

void eb_ref_horq_to_f32(size_t pixels, int order, int oc, const int32_t *acc,
                        const float *beta, const float *mult,
                        const float *bias, float out_min, float out_max,
                        float *y) {
  for (size_t p = 0; p < pixels; ++p) {
    const float *bp = beta + p * (size_t)order;
    const int32_t *ap = acc + p * (size_t)order * (size_t)oc;
    float *yp = y + p * (size_t)oc;
    for (int o = 0; o < oc; ++o) {
      float s = 0.0f;
      for (int i = 0; i < order; ++i)
        s += bp[i] * (float)ap[(size_t)i * (size_t)oc + (size_t)o];
      const float m = mult ? mult[o] : 1.0f;
      const float b = bias ? bias[o] : 0.0f;
      yp[o] = clampf(m * s + b, out_min, out_max);
    }
  }
}

/* ---- packing -------------------------------------------------------------- */

void eb_ref_pack_f32(size_t rows, int c, const float *x, const float *thr,
                     uint64_t *y) {
  const size_t wpr = eb_words((size_t)c);
  for (size_t r = 0; r < rows; ++r) {
    const float *xr = x + r * (size_t)c;
    uint64_t *yr = y + r * wpr;
    for (size_t k = 0; k < wpr; ++k) yr[k] = 0;
    for (int j = 0; j < c; ++j) {
      const float t = thr ? thr[j] : 0.0f;
      if (xr[j] < t) yr[j / 64] |= bit(j);
    }
  }
}

void eb_ref_pack_i8(size_t rows, int c, const int8_t *x, const float *thr,
                    int32_t zero_point, uint64_t *y) {
  const size_t wpr = eb_words((size_t)c);
  for (size_t r = 0; r < rows; ++r) {
    const int8_t *xr = x + r * (size_t)c;
    uint64_t *yr = y + r * wpr;
    for (size_t k = 0; k < wpr; ++k) yr[k] = 0;
    for (int j = 0; j < c; ++j) {
      /* every int8 code is exact in float, so this is the integer comparison
       * q < ceil(thr) without rounding questions */
      const float t = thr ? thr[j] : (float)zero_point;
      if ((float)xr[j] < t) yr[j / 64] |= bit(j);
    }
  }
}

void eb_ref_unpack_f32(size_t rows, int c, const uint64_t *x, float *y) {
  const size_t wpr = eb_words((size_t)c);
  for (size_t r = 0; r < rows; ++r) {
    const uint64_t *xr = x + r * wpr;
    float *yr = y + r * (size_t)c;
    for (int j = 0; j < c; ++j)
      yr[j] = (xr[j / 64] & bit(j)) ? -1.0f : 1.0f;
  }
}

/* ---- binary max-pool ------------------------------------------------------ */

void eb_ref_bmaxpool(const eb_conv_geom *g, const uint64_t *x, uint64_t *y) {
  const size_t wpr = eb_words((size_t)g->ic);
  for (int n = 0; n < g->n; ++n) {
    for (int oy = 0; oy < g->oh; ++oy) {
      for (int ox = 0; ox < g->ow; ++ox) {
        uint64_t *yp = y + pix(n, oy, ox, g->oh, g->ow) * wpr;
        for (size_t k = 0; k < wpr; ++k) {
          uint64_t v = ~(uint64_t)0;
          int any = 0;
          for (int ky = 0; ky < g->kh; ++ky) {
            const int iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->ih) continue;
            for (int kx = 0; kx < g->kw; ++kx) {
              const int ix = ox * g->sw - g->pl + kx * g->dw;
              if (ix < 0 || ix >= g->iw) continue;
              v &= x[pix(n, iy, ix, g->ih, g->iw) * wpr + k];
              any = 1;
            }
          }
          yp[k] = any ? v : 0; /* a window with no tap inside gives +1 */
        }
      }
    }
  }
}
