/* Body of the fused HetConv kernel, compiled once per ISA (hetconv.c: baseline,
 * float_x86/hetconv_avx2.c: AVX2+FMA) with EB_HETCONV_FN naming the variant. The
 * product is written with GCC/Clang vector types so each build gets its own SIMD
 * width without intrinsics. */
#include <string.h>

#include "float/hetconv.h"

#ifndef EB_HETCONV_FN
#error "define EB_HETCONV_FN before including hetconv_impl.h"
#endif

/* Per build: EB_HC_VW floats per vector (8: two per 16-filter block; 16 with AVX-512:
 * one) and EB_HC_MR output pixels per register tile, so MR * NR / VW accumulators fit
 * the ISA's registers. */
#ifndef EB_HC_VW
#define EB_HC_VW 8
#endif
#ifndef EB_HC_MR
#define EB_HC_MR 4
#endif
#define EB_HC_NV (EB_HETCONV_NR / EB_HC_VW)

typedef float eb_hc_v8 __attribute__((vector_size(EB_HC_VW * 4)));

/* a macro, not a function: returning a vector by value from a baseline-ISA function
 * would change the ABI between the builds */
#define EB_HC_LOAD(v, p) memcpy(&(v), (p), sizeof(v))


/* MR pixels x (VW * nv) filters of one block; nv is a constant at each call site. */
static inline __attribute__((always_inline)) void eb_hc_block(const int nv, const float *const *rows, const float *wp,
                                                              const eb_conv_geom *g, int P, int grp, int n3, int taps,
                                                              eb_hc_v8 acc[][EB_HC_NV]) {
  enum { NR = EB_HETCONV_NR, MR = EB_HC_MR };
  const size_t K = (size_t)taps * (size_t)n3 + (size_t)(g->ic - n3);
  const float *bias = wp + K * NR;
  for (int p = 0; p < MR; p++)
    for (int v = 0; v < nv; v++) EB_HC_LOAD(acc[p][v], bias + EB_HC_VW * v);
  /* kh x kw part on channels grp, grp + P, ...; summed in the reference's order */
  const float *w = wp;
  for (int t = 0; t < taps; t++) {
    const float *xs[MR];
    for (int p = 0; p < MR; p++) xs[p] = rows[p * (taps + 1) + t] + grp;
    for (int i = 0; i < n3; i++, w += NR) {
      eb_hc_v8 wv[EB_HC_NV];
      for (int v = 0; v < nv; v++) EB_HC_LOAD(wv[v], w + EB_HC_VW * v);
      for (int p = 0; p < MR; p++) {
        const float a = xs[p][(size_t)i * (size_t)P];
        for (int v = 0; v < nv; v++) acc[p][v] += a * wv[v];
      }
    }
  }
  /* 1x1 part at the window centre on every other channel, in increasing order */
  const float *xc[MR];
  for (int p = 0; p < MR; p++) xc[p] = rows[p * (taps + 1) + taps];
  for (int i = 0; i < n3; i++) {
    for (int j = 0; j < P; j++) {
      if (j == grp) continue;
      const size_t c = (size_t)i * (size_t)P + (size_t)j;
      eb_hc_v8 wv[EB_HC_NV];
      for (int v = 0; v < nv; v++) EB_HC_LOAD(wv[v], w + EB_HC_VW * v);
      w += NR;
      for (int p = 0; p < MR; p++) {
        const float a = xc[p][c];
        for (int v = 0; v < nv; v++) acc[p][v] += a * wv[v];
      }
    }
  }
}

void EB_HETCONV_FN(const eb_conv_geom *g, int part, const float *x, const float *packed, const float *zero_row,
                   float out_min, float out_max, float *y, size_t r0, size_t r1) {
  const int P = part, n3 = g->ic / P, taps = g->kh * g->kw;
  const size_t K = (size_t)taps * (size_t)n3 + (size_t)(g->ic - n3);
  const size_t ic = (size_t)g->ic, oc = (size_t)g->oc;
  enum { NR = EB_HETCONV_NR, MR = EB_HC_MR };
  /* row pointers of each tap for each pixel of the tile, then the centre */
  const float *rows[MR * (taps + 1)];
  for (size_t r = r0; r < r1; r++) {
    const int n = (int)(r / (size_t)g->oh), oy = (int)(r % (size_t)g->oh);
    float *yrow = y + r * (size_t)g->ow * oc;
    for (int ox0 = 0; ox0 < g->ow; ox0 += MR) {
      const int mr = g->ow - ox0 < MR ? g->ow - ox0 : MR;
      for (int p = 0; p < MR; p++) {
        const int ox = ox0 + (p < mr ? p : mr - 1); /* tail: repeat the last pixel */
        for (int ky = 0; ky < g->kh; ky++) {
          const int iy = oy * g->sh - g->pt + ky * g->dh;
          for (int kx = 0; kx < g->kw; kx++) {
            const int ix = ox * g->sw - g->pl + kx * g->dw;
            const int in = iy >= 0 && iy < g->ih && ix >= 0 && ix < g->iw;
            rows[p * (taps + 1) + ky * g->kw + kx] =
                in ? x + (((size_t)n * (size_t)g->ih + (size_t)iy) * (size_t)g->iw + (size_t)ix) * ic : zero_row;
          }
        }
        const int cy = oy * g->sh - g->pt + (g->kh / 2) * g->dh, cx = ox * g->sw - g->pl + (g->kw / 2) * g->dw;
        const int cin = cy >= 0 && cy < g->ih && cx >= 0 && cx < g->iw;
        rows[p * (taps + 1) + taps] =
            cin ? x + (((size_t)n * (size_t)g->ih + (size_t)cy) * (size_t)g->iw + (size_t)cx) * ic : zero_row;
      }
      const float *wp = packed;
      for (int grp = 0; grp < P; grp++) {
        const int ocg = (g->oc - grp + P - 1) / P;
        for (int b0 = 0; b0 < ocg; b0 += NR, wp += (K + 1) * NR) {
          eb_hc_v8 acc[MR][EB_HC_NV];
          const int nr = ocg - b0 < NR ? ocg - b0 : NR;
          float out[MR][NR];
          /* a block of at most VW filters (small groups at large P) needs one vector. (An
           * 8-wide block for the AVX-512 build's groups of <= 8 filters measured slower.) */
          const int nv = EB_HC_NV > 1 && nr <= EB_HC_VW ? 1 : EB_HC_NV;
          if (nv == 1) eb_hc_block(1, (const float *const *)rows, wp, g, P, grp, n3, taps, acc);
          else eb_hc_block(EB_HC_NV, (const float *const *)rows, wp, g, P, grp, n3, taps, acc);
          for (int p = 0; p < MR; p++) memcpy(out[p], acc[p], (size_t)nv * sizeof acc[p][0]);
          /* filters of a group sit P apart in the output row */
          for (int p = 0; p < mr; p++) {
            float *yp = yrow + (size_t)(ox0 + p) * oc + (size_t)grp + (size_t)b0 * (size_t)P;
            for (int j = 0; j < nr; j++) {
              const float v = out[p][j] < out_min ? out_min : out[p][j];
              yp[(size_t)j * (size_t)P] = v > out_max ? out_max : v;
            }
          }
        }
      }
    }
  }
}
