/*
 * Reference float convolutions: dense (grouped), depthwise, fully connected
 * and HetConv. Plain loops over NHWC activations; see ref.h for semantics.
 */
#include "ref.h"

static float clampf(float v, float lo, float hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

/* Offset of pixel (n, y, x) in an NHWC tensor, in elements. */
static size_t pix(int n, int y, int x, int h, int w) {
  return ((size_t)n * (size_t)h + (size_t)y) * (size_t)w + (size_t)x;
}

void eb_ref_conv2d_f32(const eb_conv_geom *g, const float *x, const float *w,
                       const float *bias, float out_min, float out_max,
                       float *y) {
  const int icg = g->ic / g->groups; /* input channels per group */
  const int ocg = g->oc / g->groups; /* output channels per group */
  for (int n = 0; n < g->n; ++n) {
    for (int oy = 0; oy < g->oh; ++oy) {
      for (int ox = 0; ox < g->ow; ++ox) {
        float *yp = y + pix(n, oy, ox, g->oh, g->ow) * (size_t)g->oc;
        for (int o = 0; o < g->oc; ++o) {
          const int grp = o / ocg;
          const float *wo = w + (size_t)o * (size_t)g->kh * (size_t)g->kw *
                                    (size_t)icg;
          float acc = 0.0f;
          for (int ky = 0; ky < g->kh; ++ky) {
            const int iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->ih) continue;
            for (int kx = 0; kx < g->kw; ++kx) {
              const int ix = ox * g->sw - g->pl + kx * g->dw;
              if (ix < 0 || ix >= g->iw) continue;
              const float *xp = x + pix(n, iy, ix, g->ih, g->iw) *
                                        (size_t)g->ic +
                                (size_t)grp * (size_t)icg;
              const float *wp =
                  wo + ((size_t)ky * (size_t)g->kw + (size_t)kx) * (size_t)icg;
              for (int c = 0; c < icg; ++c) acc += xp[c] * wp[c];
            }
          }
          if (bias) acc += bias[o];
          yp[o] = clampf(acc, out_min, out_max);
        }
      }
    }
  }
}

void eb_ref_dwconv2d_f32(const eb_conv_geom *g, const float *x, const float *w,
                         const float *bias, float out_min, float out_max,
                         float *y) {
  const int m = g->oc / g->ic; /* channel multiplier */
  for (int n = 0; n < g->n; ++n) {
    for (int oy = 0; oy < g->oh; ++oy) {
      for (int ox = 0; ox < g->ow; ++ox) {
        float *yp = y + pix(n, oy, ox, g->oh, g->ow) * (size_t)g->oc;
        for (int o = 0; o < g->oc; ++o) {
          const int c = o / m;
          float acc = 0.0f;
          for (int ky = 0; ky < g->kh; ++ky) {
            const int iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->ih) continue;
            for (int kx = 0; kx < g->kw; ++kx) {
              const int ix = ox * g->sw - g->pl + kx * g->dw;
              if (ix < 0 || ix >= g->iw) continue;
              const float xv =
                  x[pix(n, iy, ix, g->ih, g->iw) * (size_t)g->ic + (size_t)c];
              const float wv =
                  w[((size_t)ky * (size_t)g->kw + (size_t)kx) * (size_t)g->oc +
                    (size_t)o];
              acc += xv * wv;
            }
          }
          if (bias) acc += bias[o];
          yp[o] = clampf(acc, out_min, out_max);
        }
      }
    }
  }
}

void eb_ref_fc_f32(int n, int k, int o, const float *x, const float *w,
                   const float *bias, float out_min, float out_max, float *y) {
  for (int r = 0; r < n; ++r) {
    const float *xr = x + (size_t)r * (size_t)k;
    for (int j = 0; j < o; ++j) {
      const float *wj = w + (size_t)j * (size_t)k;
      float acc = 0.0f;
      for (int i = 0; i < k; ++i) acc += xr[i] * wj[i];
      if (bias) acc += bias[j];
      y[(size_t)r * (size_t)o + (size_t)j] = clampf(acc, out_min, out_max);
    }
  }
}

void eb_ref_hetconv2d_f32(const eb_conv_geom *g, int part, const float *x,
                          const float *w3, const float *w1, const float *bias,
                          float out_min, float out_max, float *y) {
  const int n3 = g->ic / part;  /* channels under the kh x kw kernel */
  const int n1 = g->ic - n3;    /* channels under the 1x1 kernel */
  for (int n = 0; n < g->n; ++n) {
    for (int oy = 0; oy < g->oh; ++oy) {
      for (int ox = 0; ox < g->ow; ++ox) {
        float *yp = y + pix(n, oy, ox, g->oh, g->ow) * (size_t)g->oc;
        /* Window centre, read by the 1x1 kernels. */
        const int cy = oy * g->sh - g->pt + (g->kh / 2) * g->dh;
        const int cx = ox * g->sw - g->pl + (g->kw / 2) * g->dw;
        const int centre_in = cy >= 0 && cy < g->ih && cx >= 0 && cx < g->iw;
        for (int o = 0; o < g->oc; ++o) {
          const int first = o % part; /* first channel of the kh x kw subset */
          float acc = 0.0f;
          /* kh x kw part: channels first, first + part, first + 2*part, ... */
          const float *wo =
              w3 + (size_t)o * (size_t)g->kh * (size_t)g->kw * (size_t)n3;
          for (int ky = 0; ky < g->kh; ++ky) {
            const int iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->ih) continue;
            for (int kx = 0; kx < g->kw; ++kx) {
              const int ix = ox * g->sw - g->pl + kx * g->dw;
              if (ix < 0 || ix >= g->iw) continue;
              const float *xp = x + pix(n, iy, ix, g->ih, g->iw) * (size_t)g->ic;
              const float *wp =
                  wo + ((size_t)ky * (size_t)g->kw + (size_t)kx) * (size_t)n3;
              for (int i = 0; i < n3; ++i)
                acc += xp[(size_t)first + (size_t)i * (size_t)part] * wp[i];
            }
          }
          /* 1x1 part: every other channel in increasing order, at the centre. */
          if (centre_in) {
            const float *xp = x + pix(n, cy, cx, g->ih, g->iw) * (size_t)g->ic;
            const float *wp = w1 + (size_t)o * (size_t)n1;
            int i = 0;
            for (int c = 0; c < g->ic; ++c) {
              if (c % part == first) continue;
              acc += xp[c] * wp[i++];
            }
          }
          if (bias) acc += bias[o];
          yp[o] = clampf(acc, out_min, out_max);
        }
      }
    }
  }
}
