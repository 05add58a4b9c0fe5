/*
 * Reference float pooling. Padding taps are skipped; a window with no tap
 * inside the input yields 0.
 */
#include "ref.h"

/* Offset of pixel (n, y, x) in an NHWC tensor, in pixels. */
static size_t pix(int n, int y, int x, int h, int w) {
  return ((size_t)n * (size_t)h + (size_t)y) * (size_t)w + (size_t)x;
}

void eb_ref_maxpool_f32(const eb_conv_geom *g, const float *x, float *y) {
  for (int n = 0; n < g->n; ++n) {
    for (int oy = 0; oy < g->oh; ++oy) {
      for (int ox = 0; ox < g->ow; ++ox) {
        float *yp = y + pix(n, oy, ox, g->oh, g->ow) * (size_t)g->ic;
        for (int c = 0; c < g->ic; ++c) {
          float m = 0.0f;
          int any = 0;
          for (int ky = 0; ky < g->kh; ++ky) {
            const int iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->ih) continue;
            for (int kx = 0; kx < g->kw; ++kx) {
              const int ix = ox * g->sw - g->pl + kx * g->dw;
              if (ix < 0 || ix >= g->iw) continue;
              const float v =
                  x[pix(n, iy, ix, g->ih, g->iw) * (size_t)g->ic + (size_t)c];
              if (!any || v > m) m = v;
              any = 1;
            }
          }
          yp[c] = m;
        }
      }
    }
  }
}

void eb_ref_avgpool_f32(const eb_conv_geom *g, int count_include_pad,
                        const float *x, float *y) {
  for (int n = 0; n < g->n; ++n) {
    for (int oy = 0; oy < g->oh; ++oy) {
      for (int ox = 0; ox < g->ow; ++ox) {
        float *yp = y + pix(n, oy, ox, g->oh, g->ow) * (size_t)g->ic;
        for (int c = 0; c < g->ic; ++c) {
          float s = 0.0f;
          int cnt = 0;
          for (int ky = 0; ky < g->kh; ++ky) {
            const int iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->ih) continue;
            for (int kx = 0; kx < g->kw; ++kx) {
              const int ix = ox * g->sw - g->pl + kx * g->dw;
              if (ix < 0 || ix >= g->iw) continue;
              s += x[pix(n, iy, ix, g->ih, g->iw) * (size_t)g->ic + (size_t)c];
              ++cnt;
            }
          }
          const int div = count_include_pad ? g->kh * g->kw : cnt;
          yp[c] = div > 0 ? s / (float)div : 0.0f;
        }
      }
    }
  }
}

void eb_ref_global_avgpool_f32(int n, int hw, int c, const float *x, float *y) {
  for (int b = 0; b < n; ++b) {
    const float *xb = x + (size_t)b * (size_t)hw * (size_t)c;
    for (int j = 0; j < c; ++j) {
      float s = 0.0f;
      for (int p = 0; p < hw; ++p) s += xb[(size_t)p * (size_t)c + (size_t)j];
      y[(size_t)b * (size_t)c + (size_t)j] = hw > 0 ? s / (float)hw : 0.0f;
    }
  }
}
