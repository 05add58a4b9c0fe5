/*
 * Reference int8 layers with TFLite's quantized arithmetic (see ref.h): the
 * oracle for the XNNPACK int8 path, which may differ by one where its
 * requantization rounds differently.
 */
#include <math.h>

#include "ref.h"

static size_t pix(int n, int y, int x, int h, int w) {
  return ((size_t)n * (size_t)h + (size_t)y) * (size_t)w + (size_t)x;
}

void eb_quantize_multiplier(double m, int32_t *q, int *shift) {
  if (m == 0.0) {
    *q = 0;
    *shift = 0;
    return;
  }
  int e;
  const double f = frexp(m, &e);
  int64_t fixed = (int64_t)round(f * (double)(1LL << 31)); /* round: half away from zero */
  if (fixed == (1LL << 31)) {
    fixed /= 2;
    ++e;
  }
  if (e < -31) {
    e = 0;
    fixed = 0;
  }
  *q = (int32_t)fixed;
  *shift = e;
}

static int32_t srdhm(int32_t a, int32_t b) {
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  const int64_t ab = (int64_t)a * (int64_t)b;
  const int64_t nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
  return (int32_t)((ab + nudge) / (1LL << 31)); /* C division truncates toward zero */
}

static int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)((1LL << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t eb_mul_by_quantized_multiplier(int32_t acc, int32_t q, int shift) {
  const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  /* TFLite's x * (1 << left) wraps in int32; do the same without signed overflow */
  const int32_t shifted = (int32_t)(uint32_t)((uint64_t)(uint32_t)acc << left);
  return rounding_divide_by_pot(srdhm(shifted, q), right);
}

void eb_q8_channel_multipliers(int oc, float in_scale, const float *w_scale, int per_channel, float out_scale,
                               int32_t *mult, int *shift) {
  for (int o = 0; o < oc; ++o) {
    const double m = (double)in_scale * (double)w_scale[per_channel ? o : 0] / (double)out_scale;
    eb_quantize_multiplier(m, &mult[o], &shift[o]);
  }
}

static int8_t finish(int32_t acc, int32_t mult, int shift, const eb_q8_io *q) {
  int32_t v = eb_mul_by_quantized_multiplier(acc, mult, shift) + q->out_zp;
  v = v < q->act_min ? q->act_min : v;
  v = v > q->act_max ? q->act_max : v;
  return (int8_t)v;
}

void eb_ref_conv2d_i8(const eb_conv_geom *g, const int8_t *x, const int8_t *w, const int32_t *bias,
                      const int32_t *mult, const int *shift, const eb_q8_io *q, int8_t *y) {
  const int icg = g->ic / g->groups, ocg = g->oc / g->groups;
  for (int n = 0; n < g->n; ++n)
    for (int oy = 0; oy < g->oh; ++oy)
      for (int ox = 0; ox < g->ow; ++ox) {
        int8_t *yp = y + pix(n, oy, ox, g->oh, g->ow) * (size_t)g->oc;
        for (int o = 0; o < g->oc; ++o) {
          const int grp = o / ocg;
          const int8_t *wo = w + (size_t)o * (size_t)g->kh * (size_t)g->kw * (size_t)icg;
          int32_t acc = bias ? bias[o] : 0;
          for (int ky = 0; ky < g->kh; ++ky) {
            const int iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->ih) continue;
            for (int kx = 0; kx < g->kw; ++kx) {
              const int ix = ox * g->sw - g->pl + kx * g->dw;
              if (ix < 0 || ix >= g->iw) continue;
              const int8_t *xp = x + pix(n, iy, ix, g->ih, g->iw) * (size_t)g->ic + (size_t)grp * (size_t)icg;
              const int8_t *wp = wo + ((size_t)ky * (size_t)g->kw + (size_t)kx) * (size_t)icg;
              for (int c = 0; c < icg; ++c) acc += ((int32_t)xp[c] - q->in_zp) * ((int32_t)wp[c] - q->w_zp);
            }
          }
          yp[o] = finish(acc, mult[o], shift[o], q);
        }
      }
}

void eb_ref_dwconv2d_i8(const eb_conv_geom *g, const int8_t *x, const int8_t *w, const int32_t *bias,
                        const int32_t *mult, const int *shift, const eb_q8_io *q, int8_t *y) {
  const int m = g->oc / g->ic;
  for (int n = 0; n < g->n; ++n)
    for (int oy = 0; oy < g->oh; ++oy)
      for (int ox = 0; ox < g->ow; ++ox) {
        int8_t *yp = y + pix(n, oy, ox, g->oh, g->ow) * (size_t)g->oc;
        for (int o = 0; o < g->oc; ++o) {
          const int c = o / m;
          int32_t acc = bias ? bias[o] : 0;
          for (int ky = 0; ky < g->kh; ++ky) {
            const int iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->ih) continue;
            for (int kx = 0; kx < g->kw; ++kx) {
              const int ix = ox * g->sw - g->pl + kx * g->dw;
              if (ix < 0 || ix >= g->iw) continue;
              const int32_t xv = x[pix(n, iy, ix, g->ih, g->iw) * (size_t)g->ic + (size_t)c];
              const int32_t wv = w[((size_t)ky * (size_t)g->kw + (size_t)kx) * (size_t)g->oc + (size_t)o] - q->w_zp;
              acc += (xv - q->in_zp) * wv;
            }
          }
          yp[o] = finish(acc, mult[o], shift[o], q);
        }
      }
}

void eb_ref_fc_i8(int n, int k, int o, const int8_t *x, const int8_t *w, const int32_t *bias, const int32_t *mult,
                  const int *shift, const eb_q8_io *q, int8_t *y) {
  for (int r = 0; r < n; ++r)
    for (int j = 0; j < o; ++j) {
      const int8_t *xr = x + (size_t)r * (size_t)k, *wj = w + (size_t)j * (size_t)k;
      int32_t acc = bias ? bias[j] : 0;
      for (int i = 0; i < k; ++i) acc += ((int32_t)xr[i] - q->in_zp) * ((int32_t)wj[i] - q->w_zp);
      y[(size_t)r * (size_t)o + (size_t)j] = finish(acc, mult[j], shift[j], q);
    }
}

void eb_ref_add_i8(size_t count, const int8_t *a, float a_scale, int32_t a_zp, const int8_t *b, float b_scale,
                   int32_t b_zp, float y_scale, const eb_q8_io *q, int8_t *y) {
  const int left_shift = 20;
  const double twice_max = 2.0 * (double)(a_scale > b_scale ? a_scale : b_scale);
  int32_t ma, mb, my;
  int sa, sb, sy;
  eb_quantize_multiplier((double)a_scale / twice_max, &ma, &sa);
  eb_quantize_multiplier((double)b_scale / twice_max, &mb, &sb);
  eb_quantize_multiplier(twice_max / ((double)(1 << left_shift) * (double)y_scale), &my, &sy);
  for (size_t i = 0; i < count; ++i) {
    const int32_t va = ((int32_t)a[i] - a_zp) * (1 << left_shift);
    const int32_t vb = ((int32_t)b[i] - b_zp) * (1 << left_shift);
    const int32_t sum = eb_mul_by_quantized_multiplier(va, ma, sa) + eb_mul_by_quantized_multiplier(vb, mb, sb);
    y[i] = finish(sum, my, sy, q);
  }
}

void eb_ref_maxpool_i8(const eb_conv_geom *g, const eb_q8_io *q, const int8_t *x, int8_t *y) {
  for (int n = 0; n < g->n; ++n)
    for (int oy = 0; oy < g->oh; ++oy)
      for (int ox = 0; ox < g->ow; ++ox) {
        int8_t *yp = y + pix(n, oy, ox, g->oh, g->ow) * (size_t)g->ic;
        for (int c = 0; c < g->ic; ++c) {
          int32_t m = -128;
          for (int ky = 0; ky < g->kh; ++ky) {
            const int iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->ih) continue;
            for (int kx = 0; kx < g->kw; ++kx) {
              const int ix = ox * g->sw - g->pl + kx * g->dw;
              if (ix < 0 || ix >= g->iw) continue;
              const int32_t v = x[pix(n, iy, ix, g->ih, g->iw) * (size_t)g->ic + (size_t)c];
              if (v > m) m = v;
            }
          }
          m = m < q->act_min ? q->act_min : m;
          yp[c] = (int8_t)(m > q->act_max ? q->act_max : m);
        }
      }
}

void eb_ref_avgpool_i8(const eb_conv_geom *g, int count_include_pad, int round_half_up, const eb_q8_io *q,
                       const int8_t *x, int8_t *y) {
  for (int n = 0; n < g->n; ++n)
    for (int oy = 0; oy < g->oh; ++oy)
      for (int ox = 0; ox < g->ow; ++ox) {
        int8_t *yp = y + pix(n, oy, ox, g->oh, g->ow) * (size_t)g->ic;
        for (int c = 0; c < g->ic; ++c) {
          int32_t s = 0, cnt = 0;
          for (int ky = 0; ky < g->kh; ++ky) {
            const int iy = oy * g->sh - g->pt + ky * g->dh;
            for (int kx = 0; kx < g->kw; ++kx) {
              const int ix = ox * g->sw - g->pl + kx * g->dw;
              if (iy < 0 || iy >= g->ih || ix < 0 || ix >= g->iw) {
                if (count_include_pad) s += q->in_zp, ++cnt;
                continue;
              }
              s += x[pix(n, iy, ix, g->ih, g->iw) * (size_t)g->ic + (size_t)c];
              ++cnt;
            }
          }
          /* TFLite's int8 kernel rounds half away from zero; its uint8 kernel rounds (acc + cnt/2) / cnt
           * on codes >= 0, which on codes shifted by -128 is the floor of (s + cnt/2) / cnt */
          int32_t v;
          if (round_half_up) {
            const int32_t t = s + cnt / 2;
            v = t >= 0 ? t / cnt : -((-t + cnt - 1) / cnt);
          } else {
            v = s > 0 ? (s + cnt / 2) / cnt : (s - cnt / 2) / cnt;
          }
          v = v < q->act_min ? q->act_min : v;
          yp[c] = (int8_t)(v > q->act_max ? q->act_max : v);
        }
      }
}

void eb_ref_global_avgpool_i8(int n, int hw, int c, const int8_t *x, float in_scale, float out_scale,
                              const eb_q8_io *q, int8_t *y) {
  int32_t mult;
  int shift;
  eb_quantize_multiplier((double)in_scale / ((double)out_scale * (double)hw), &mult, &shift);
  for (int b = 0; b < n; ++b)
    for (int j = 0; j < c; ++j) {
      int32_t acc = 0;
      for (int p = 0; p < hw; ++p) acc += (int32_t)x[((size_t)b * (size_t)hw + (size_t)p) * (size_t)c + (size_t)j] - q->in_zp;
      y[(size_t)b * (size_t)c + (size_t)j] = finish(acc, mult, shift, q);
    }
}
