/* The stem kernel of float/stem.h with AVX-512F (flags for this file only; eb_stem_kernel
 * checks the CPU). Only explicit fused multiply-adds: each one is XNNPACK's. */
#include <immintrin.h>
#include <string.h>

#include "float/stem.h"

#define EB_STEM_P 6
#define EB_STEM_MAX_K 512

void eb_stem_rows_avx512(const eb_conv_geom *g, const float *packed, const float *x, float lo, float hi, float *y,
                         int y0, int y1);

/* P pixels x NV*16 channels; a[p][ky]: kw*ic contiguous floats of window row ky of pixel p. */
static inline __attribute__((always_inline)) void tile(const int P, const int NV, int kh, int kwc, const float *packed,
                                                       const float *(*a)[8], __m512 vlo, __m512 vhi,
                                                       float *const *yp) {
  const int oc = NV * 16;
  __m512 acc[EB_STEM_P][4];
  for (int v = 0; v < NV; v++) {
    const __m512 b = _mm512_loadu_ps(packed + v * 16);
    for (int p = 0; p < P; p++) acc[p][v] = b;
  }
  const float *w = packed + oc;
  for (int ky = 0; ky < kh; ky++) {
    const float *ap[EB_STEM_P];
    for (int p = 0; p < P; p++) ap[p] = a[p][ky];
    for (int k = 0; k < kwc; k++, w += oc) {
      __m512 wv[4];
      for (int v = 0; v < NV; v++) wv[v] = _mm512_loadu_ps(w + v * 16);
      for (int p = 0; p < P; p++) {
        const __m512 xv = _mm512_set1_ps(ap[p][k]);
        for (int v = 0; v < NV; v++) acc[p][v] = _mm512_fmadd_ps(xv, wv[v], acc[p][v]);
      }
    }
  }
  for (int p = 0; p < P; p++)
    for (int v = 0; v < NV; v++)
      _mm512_storeu_ps(yp[p] + v * 16, _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc[p][v])));
}

#define EB_STEM_CASE(P, NV)                                                                 \
  case (P) * 8 + (NV):                                                                      \
    tile(P, NV, g->kh, kwc, packed, a, vlo, vhi, yp);                                       \
    break;
#define EB_STEM_CASES(P) EB_STEM_CASE(P, 1) EB_STEM_CASE(P, 2) EB_STEM_CASE(P, 3) EB_STEM_CASE(P, 4)

void eb_stem_rows_avx512(const eb_conv_geom *g, const float *packed, const float *x, float lo, float hi, float *y,
                         int y0, int y1) {
  const int kwc = g->kw * g->ic, nv = g->oc / 16;
  const size_t in_row = (size_t)g->iw * (size_t)g->ic;
  /* window rows in the padding read zeros, as XNNPACK's do (the same multiply-adds) */
  static const float zero[EB_STEM_MAX_K];
  float win[EB_STEM_P][EB_STEM_MAX_K];
  const float *a[EB_STEM_P][8];
  float *yp[EB_STEM_P];
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  for (int oy = y0; oy < y1; oy++) {
    for (int ox0 = 0; ox0 < g->ow; ox0 += EB_STEM_P) {
      const int P = g->ow - ox0 < EB_STEM_P ? g->ow - ox0 : EB_STEM_P;
      for (int p = 0; p < P; p++) {
        const int ox = ox0 + p, ix0 = ox * g->sw - g->pl;
        const int inside = ix0 >= 0 && ix0 + g->kw <= g->iw;
        yp[p] = y + ((size_t)(oy - y0) * (size_t)g->ow + (size_t)ox) * (size_t)g->oc;
        for (int ky = 0; ky < g->kh; ky++) {
          const int iy = oy * g->sh - g->pt + ky * g->dh;
          if (iy < 0 || iy >= g->ih) {
            a[p][ky] = zero;
          } else if (inside) {
            a[p][ky] = x + (size_t)iy * in_row + (size_t)ix0 * (size_t)g->ic;
          } else { /* a left or right border: the row with its padding as zeros */
            float *wr = win[p] + ky * kwc;
            for (int kx = 0; kx < g->kw; kx++) {
              const int ix = ix0 + kx;
              if (ix >= 0 && ix < g->iw) memcpy(wr + kx * g->ic, x + (size_t)iy * in_row + (size_t)ix * g->ic,
                                                (size_t)g->ic * sizeof(float));
              else memset(wr + kx * g->ic, 0, (size_t)g->ic * sizeof(float));
            }
            a[p][ky] = wr;
          }
        }
      }
      switch (P * 8 + nv) {
        EB_STEM_CASES(1)
        EB_STEM_CASES(2)
        EB_STEM_CASES(3)
        EB_STEM_CASES(4)
        EB_STEM_CASES(5)
        EB_STEM_CASES(6)
        default: break;
      }
    }
  }
}
