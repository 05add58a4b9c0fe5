/* int8 kernel tests: every variant of q8.h this CPU runs (portable, AVX512-VNNI, NEON) against
 * the reference int8 kernels, bit for bit: GEMM as FULLY_CONNECTED and, through
 * im2col, as KxK conv; depthwise conv; add; quantize. Shapes cover channel counts 1..130 (odd
 * ones and either side of the 16-lane blocks and 64-channel panels), k not a multiple of
 * 2/4/8/16, row counts off the 2- and 4-row tiles, strides, padding, dilation, per-tensor
 * weights with a zero point and per-channel symmetric ones, weights with and without the code
 * -128 (NEON's int16 pair sums), codes at the extremes (saturating products), fused
 * activations, multipliers above and below 1 (left and right shifts), and exact ties in both
 * roundings of the requantization. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "q8/q8.h"
#include "ref/ref.h"

#include "check.h"

static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);
static uint32_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * UINT64_C(2685821657736338717)) >> 32);
}
static int rint_in(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }
static double rnd01(void) { return (double)rnd() / 4294967296.0; }
static void fill(int8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (int8_t)rint_in(-128, 127);
}
/* Weights: random codes; or none at -128 (so that NEON sums product pairs in int16); or
 * only the extreme codes, with one -128 (x at the extremes then gives (-128)^2 products). */
static void fill_w(int8_t *p, size_t n) {
  switch (rnd() % 4) {
    case 0:
    case 1: fill(p, n); break;
    case 2:
      for (size_t i = 0; i < n; i++) p[i] = (int8_t)rint_in(-127, 127);
      break;
    default:
      for (size_t i = 0; i < n; i++) p[i] = (int8_t)((rnd() & 1) ? 127 : -128);
      break;
  }
}
/* Activations: random codes, or (now and then) only the extremes. */
static void fill_x(int8_t *p, size_t n) {
  const int extreme = rnd() % 4 == 0;
  for (size_t i = 0; i < n; i++) p[i] = (int8_t)(extreme ? ((rnd() & 1) ? 127 : -128) : rint_in(-128, 127));
}

static const int CH[] = {1, 3, 8, 16, 17, 63, 64, 65, 130};
#define NCH ((int)(sizeof CH / sizeof CH[0]))

/* Quantization of one random layer: scales give multipliers from ~2^-12 to ~4. */
typedef struct {
  eb_q8_io q;
  int per_channel;
  float in_scale, out_scale, *w_scale;
  int32_t *mult, *bias;
  int *shift;
} layer_q;

static void make_q(layer_q *L, int oc, int taps) {
  L->per_channel = rnd() & 1;
  L->q.in_zp = rint_in(-128, 127);
  L->q.out_zp = rint_in(-128, 127);
  L->q.w_zp = L->per_channel ? 0 : rint_in(-128, 127);
  L->q.act_min = -128;
  L->q.act_max = 127;
  switch (rnd() % 3) {
    case 1: L->q.act_min = L->q.out_zp; break; /* relu */
    case 2: L->q.act_min = rint_in(-128, 0), L->q.act_max = rint_in(1, 127); break;
  }
  L->in_scale = (float)(0.01 + rnd01() * 0.1);
  /* outputs spread across the int8 range: out_scale ~ in_scale * w_scale * sqrt(taps) * 128,
   * times a factor that also forces left shifts (multiplier >= 1) now and then */
  const double spread = (rnd() % 5 == 0) ? 0.1 : 1.0 + rnd01() * 40.0;
  L->w_scale = malloc(sizeof(float) * (size_t)oc);
  for (int o = 0; o < oc; o++) L->w_scale[o] = (float)(0.002 + rnd01() * 0.02);
  L->out_scale = (float)(L->in_scale * 0.01 * sqrt((double)taps) * 128.0 * spread / 40.0);
  L->mult = malloc(sizeof(int32_t) * (size_t)oc);
  L->shift = malloc(sizeof(int) * (size_t)oc);
  eb_q8_channel_multipliers(oc, L->in_scale, L->w_scale, L->per_channel, L->out_scale, L->mult, L->shift);
  L->bias = malloc(sizeof(int32_t) * (size_t)oc);
  for (int o = 0; o < oc; o++) L->bias[o] = rint_in(-20000, 20000);
}

static void free_q(layer_q *L) { free(L->w_scale), free(L->mult), free(L->shift), free(L->bias); }

/* The GEMM plan, as the op layer builds it. */
typedef struct {
  eb_q8_gemm g;
  void *packed;
  int32_t *colterm, *mult, *lsh, *rsh;
  int64_t *fast;
} gemm_plan;

static void make_gemm(gemm_plan *P, const eb_q8_kernels *ks, int k, int oc, const int8_t *w, const layer_q *L,
                      int with_bias) {
  const int ocp = (oc + 15) / 16 * 16;
  P->packed = malloc(eb_q8_packed_bytes(k, oc));
  P->colterm = malloc(sizeof(int32_t) * (size_t)ocp);
  P->mult = malloc(sizeof(int32_t) * (size_t)ocp);
  P->lsh = malloc(sizeof(int32_t) * (size_t)ocp);
  P->rsh = malloc(sizeof(int32_t) * (size_t)ocp);
  const int32_t rowcoef =
      eb_q8_pack_gemm(ks, k, oc, w, L->q.w_zp, with_bias ? L->bias : NULL, L->q.in_zp, P->packed, P->colterm);
  eb_q8_fill_requant(oc, ocp, L->mult, L->shift, P->mult, P->lsh, P->rsh);
  P->fast = malloc(eb_q8_fast_bytes(ocp));
  eb_q8_fill_fast(ocp, P->mult, P->rsh, P->fast);
  P->g = (eb_q8_gemm){k, oc, ocp, P->packed, P->colterm, rowcoef,
                      {P->mult, P->lsh, P->rsh, L->q.out_zp, L->q.act_min, L->q.act_max, P->fast},
                      eb_q8_w_no_min(w, (size_t)oc * k)};
}

static void free_gemm(gemm_plan *P) {
  free(P->packed), free(P->colterm), free(P->mult), free(P->lsh), free(P->rsh), free(P->fast);
}

/* Requantization paths a plan can take: the one-shift form where the layer allows it, and
 * TFLite's form always (the kernels pick it for layers that do not allow the other). */
static int one_shift_layers;
static int n_forms(const eb_q8_requant *rq) {
  one_shift_layers += rq->fast != NULL;
  return rq->fast ? 2 : 1;
}
static const char *form_name(const eb_q8_requant *rq) { return rq->fast ? "one-shift" : "tflite"; }

/* GEMM forms: each requantization form, and with weights free of -128 the int16 pair sums as
 * well as the plain path (w_no_min = 0 is always allowed). Calls run(g) on each; names it. */
static int pair_sum_layers;
static int gemm_forms(eb_q8_gemm *g, int f) {
  /* f: bit 0 requant form (1 = one-shift, where the plan has it), bit 1 w_no_min */
  return (f & 1 ? g->rq.fast != NULL : 1) && (f & 2 ? g->w_no_min : 1);
}
static void gemm_form(eb_q8_gemm *g, const eb_q8_gemm *plan, int f) {
  *g = *plan;
  if (!(f & 1)) g->rq.fast = NULL;
  if (!(f & 2)) g->w_no_min = 0;
  pair_sum_layers += (f & 2) != 0;
}
static const char *gemm_form_name(const eb_q8_gemm *g) {
  return g->rq.fast ? (g->w_no_min ? "one-shift, pairs" : "one-shift") : (g->w_no_min ? "tflite, pairs" : "tflite");
}

static int first_diff(const int8_t *a, const int8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (a[i] != b[i]) return (int)i;
  return -1;
}

static void test_fc(const eb_q8_kernels *ks, int rows, int k, int oc) {
  layer_q L;
  make_q(&L, oc, k);
  const int with_bias = rnd() % 4 != 0;
  int8_t *x = malloc((size_t)rows * k), *w = malloc((size_t)oc * k);
  int8_t *want = malloc((size_t)rows * oc), *got = malloc((size_t)rows * oc);
  fill_x(x, (size_t)rows * k);
  fill_w(w, (size_t)oc * k);
  eb_ref_fc_i8(rows, k, oc, x, w, with_bias ? L.bias : NULL, L.mult, L.shift, &L.q, want);
  gemm_plan P;
  make_gemm(&P, ks, k, oc, w, &L, with_bias);
  n_forms(&P.g.rq);
  for (int f = 0; f < 4; f++) {
    if (!gemm_forms(&P.g, f)) continue;
    eb_q8_gemm G;
    gemm_form(&G, &P.g, f);
    memset(got, 0x55, (size_t)rows * oc);
    ks->gemm(&G, (size_t)rows, x, (size_t)k, got, (size_t)oc);
    const int d = first_diff(want, got, (size_t)rows * oc);
    CHECK(d < 0, "%s fc (%s) rows=%d k=%d oc=%d per_channel=%d w_zp=%d: [%d] got %d want %d", ks->name,
          gemm_form_name(&G), rows, k, oc, L.per_channel, (int)L.q.w_zp, d, d < 0 ? 0 : got[d], d < 0 ? 0 : want[d]);
  }
  free_gemm(&P);
  free(x), free(w), free(want), free(got);
  free_q(&L);
}

static void test_conv(const eb_q8_kernels *ks, int n, int ih, int iw, int ic, int oc, int k, int s, int d, int pad) {
  const int span = (k - 1) * d + 1;
  eb_conv_geom g = {n, ih, iw, ic, (ih + 2 * pad - span) / s + 1, (iw + 2 * pad - span) / s + 1, oc, k, k, s, s, d,
                    d, pad, pad, 1};
  if (g.oh < 1 || g.ow < 1) return;
  const int taps = k * k * ic;
  layer_q L;
  make_q(&L, oc, taps);
  const size_t nx = (size_t)n * ih * iw * ic, pixels = (size_t)n * g.oh * g.ow, ny = pixels * oc;
  int8_t *x = malloc(nx), *w = malloc((size_t)oc * taps), *want = malloc(ny), *got = malloc(ny);
  int8_t *cols = malloc(pixels * (size_t)taps);
  fill_x(x, nx);
  fill_w(w, (size_t)oc * taps);
  eb_ref_conv2d_i8(&g, x, w, L.bias, L.mult, L.shift, &L.q, want);
  gemm_plan P;
  make_gemm(&P, ks, taps, oc, w, &L, 1);
  /* two halves, as two threads would split the pixels */
  const size_t half = pixels / 2;
  eb_q8_im2col(&g, x, L.q.in_zp, 0, half, cols, (size_t)taps, 0);
  eb_q8_im2col(&g, x, L.q.in_zp, half, pixels, cols + half * taps, (size_t)taps, 0);
  n_forms(&P.g.rq);
  for (int f = 0; f < 4; f++) {
    if (!gemm_forms(&P.g, f)) continue;
    eb_q8_gemm G;
    gemm_form(&G, &P.g, f);
    for (int own = 0; own <= (ks->conv != NULL && taps <= EB_Q8_CONV_MAX_K); own++) {
      memset(got, 0x55, ny);
      if (own) {
        /* the kernel's own im2col: thirds, so that a split falls inside an output row */
        const size_t t1 = pixels / 3, t2 = 2 * pixels / 3;
        ks->conv(&G, &g, x, L.q.in_zp, 0, t1, got);
        ks->conv(&G, &g, x, L.q.in_zp, t1, t2, got + t1 * oc);
        ks->conv(&G, &g, x, L.q.in_zp, t2, pixels, got + t2 * oc);
      } else {
        ks->gemm(&G, pixels, cols, (size_t)taps, got, (size_t)oc);
      }
      const int e = first_diff(want, got, ny);
      CHECK(e < 0, "%s conv%s (%s) n=%d %dx%dx%d oc=%d k=%d s=%d d=%d pad=%d w_zp=%d: [%d] got %d want %d", ks->name,
            own ? " (own im2col)" : "", gemm_form_name(&G), n, ih, iw, ic, oc, k, s, d, pad, (int)L.q.w_zp, e,
            e < 0 ? 0 : got[e], e < 0 ? 0 : want[e]);
    }
  }
  free_gemm(&P);
  free(x), free(w), free(want), free(got), free(cols);
  free_q(&L);
}

static void test_dw(const eb_q8_kernels *ks, int n, int ih, int iw, int c, int k, int s, int d, int pad) {
  const int span = (k - 1) * d + 1;
  eb_conv_geom g = {n, ih, iw, c, (ih + 2 * pad - span) / s + 1, (iw + 2 * pad - span) / s + 1, c, k, k, s, s, d, d,
                    pad, pad, 1};
  if (g.oh < 1 || g.ow < 1) return;
  layer_q L;
  make_q(&L, c, k * k);
  const int with_bias = rnd() % 4 != 0, cp = (c + 15) / 16 * 16;
  const size_t nx = (size_t)n * ih * iw * c, ny = (size_t)n * g.oh * g.ow * c;
  int8_t *x = malloc(nx), *w = malloc((size_t)k * k * c), *want = malloc(ny), *got = malloc(ny);
  fill_x(x, nx);
  fill_w(w, (size_t)k * k * c);
  eb_ref_dwconv2d_i8(&g, x, w, with_bias ? L.bias : NULL, L.mult, L.shift, &L.q, want);
  int32_t *wq = calloc((size_t)k * k * cp, sizeof(int32_t)), *bq = calloc((size_t)cp, sizeof(int32_t));
  int32_t *mult = malloc(sizeof(int32_t) * cp), *lsh = malloc(sizeof(int32_t) * cp), *rsh = malloc(sizeof(int32_t) * cp);
  for (int t = 0; t < k * k; t++)
    for (int ch = 0; ch < c; ch++) wq[(size_t)t * cp + ch] = w[(size_t)t * c + ch] - L.q.w_zp;
  int32_t *bin = malloc(sizeof(int32_t) * cp);
  int16_t *w16 = malloc(sizeof(int16_t) * (size_t)k * k * cp);
  for (size_t i = 0; i < (size_t)k * k * cp; i++) w16[i] = (int16_t)wq[i];
  eb_q8_dw_biases(k * k, c, cp, wq, with_bias ? L.bias : NULL, L.q.in_zp, bq, bin);
  eb_q8_fill_requant(c, cp, L.mult, L.shift, mult, lsh, rsh);
  int64_t *fast = malloc(eb_q8_fast_bytes(cp));
  void *pk = malloc(eb_q8_dw_pack_bytes(k, k, c));
  eb_q8_dw_pack(k, k, c, cp, wq, bin, mult, lsh, rsh, pk);
  eb_q8_fill_fast(cp, mult, rsh, fast);
  eb_q8_dw D = {g, cp, wq, bq, bin, L.q.in_zp, {mult, lsh, rsh, L.q.out_zp, L.q.act_min, L.q.act_max, fast}, pk, w16};
  const int rows = n * g.oh, mid = rows / 2;
  for (int f = n_forms(&D.rq); f-- > 0; D.rq.fast = NULL) {
    memset(got, 0x55, ny);
    ks->dw_rows(&D, x, got, 0, mid);
    ks->dw_rows(&D, x, got, mid, rows);
    const int e = first_diff(want, got, ny);
    CHECK(e < 0, "%s dw (%s) n=%d %dx%dx%d k=%d s=%d d=%d pad=%d w_zp=%d: [%d] got %d want %d", ks->name,
          form_name(&D.rq), n, ih, iw, c, k, s, d, pad, (int)L.q.w_zp, e, e < 0 ? 0 : got[e], e < 0 ? 0 : want[e]);
  }
  free(x), free(w), free(want), free(got), free(wq), free(bq), free(bin), free(mult), free(lsh), free(rsh);
  free(fast), free(pk), free(w16);
  free_q(&L);
}

/* scale 1: output scales as in networks; 2: so large that the output multiplier shifts right
 * by more than 23; 3: so small that it shifts left (AVX-512 then leaves the one-shift form);
 * 4 and 5: one input's scale 2^-12 and 2^-24 of the other's (its rescaling shifts right by
 * about 13 and 25) */
static void test_add(const eb_q8_kernels *ks, size_t count, int scale) {
  int8_t *a = malloc(count), *b = malloc(count), *want = malloc(count), *got = malloc(count);
  fill(a, count);
  fill(b, count);
  const float sa0 = (float)(0.01 + rnd01() * 0.2), sb = (float)(0.01 + rnd01() * 0.2);
  const float sa = scale == 4 ? sa0 / 4096.0f : scale == 5 ? sa0 / 16777216.0f : sa0;
  const double f = scale == 2 ? 100.0 + rnd01() * 100.0 : scale == 3 ? (1.0 + rnd01()) / (1 << 21) : 0.3 + rnd01() * 2.0;
  const float sy = (float)((sa + sb) * f);
  eb_q8_io q = {rint_in(-128, 127), rint_in(-128, 127), -128, 127, 0};
  if (rnd() & 1) q.act_min = q.out_zp;
  const int32_t za = q.in_zp, zb = rint_in(-128, 127);
  eb_ref_add_i8(count, a, sa, za, b, sb, zb, sy, &q, want);
  eb_q8_add A;
  eb_q8_add_init(&A, sa, za, sb, zb, sy, &q);
  ks->add(&A, count, a, b, got);
  const int e = first_diff(want, got, count);
  CHECK(e < 0, "%s add count=%zu: [%d] got %d want %d", ks->name, count, e, e < 0 ? 0 : got[e], e < 0 ? 0 : want[e]);
  free(a), free(b), free(want), free(got);
}

/* ADD over every pair of input codes (65536 outputs) for scales drawn as in networks, in
 * ratios of powers of two (exact halves: ties in the rounding), with one input tiny, and
 * (draw % 4 == 3) with an output scale so fine that the inputs' rescaled sums show through
 * to the last unit: their rounding, ties included, decides outputs where the inputs cancel. */
static void test_add_all_pairs(const eb_q8_kernels *ks, int draw) {
  const size_t n = 65536;
  int8_t *a = malloc(n), *b = malloc(n), *want = malloc(n), *got = malloc(n);
  for (size_t i = 0; i < n; i++) a[i] = (int8_t)(i & 255), b[i] = (int8_t)(i >> 8);
  float sa = (float)(0.01 + rnd01() * 0.2), sb = (float)(0.01 + rnd01() * 0.2);
  if (draw % 3 == 1) sb = sa * (float)(1 << rint_in(0, 6)) / 8.0f;
  if (draw % 3 == 2) sb = sa / (float)(1 << rint_in(10, 22));
  float sy = (float)((sa + sb) * (0.3 + rnd01() * 2.0));
  if (draw % 4 == 3) {
    sb = sa / (float)(1 << rint_in(1, 3));
    sy = (float)(2.0 * sa / 1048576.0 * (1.05 + rnd01() * 0.85)); /* output multiplier in [0.5, 1) */
  }
  eb_q8_io q = {rint_in(-128, 127), rint_in(-128, 127), -128, 127, 0};
  const int32_t za = q.in_zp, zb = rint_in(-128, 127);
  eb_ref_add_i8(n, a, sa, za, b, sb, zb, sy, &q, want);
  eb_q8_add A;
  eb_q8_add_init(&A, sa, za, sb, zb, sy, &q);
  ks->add(&A, n, a, b, got);
  const int e = first_diff(want, got, n);
  CHECK(e < 0, "%s add all pairs (draw %d, sa=%g sb=%g): a=%d b=%d got %d want %d", ks->name, draw, (double)sa,
        (double)sb, e < 0 ? 0 : a[e], e < 0 ? 0 : b[e], e < 0 ? 0 : got[e], e < 0 ? 0 : want[e]);
  free(a), free(b), free(want), free(got);
}

/* QUANTIZE against eb_ref_quantize_i8: random values, exact ties (k + 0.5 codes) of either
 * sign, values past the clamp, infinities and NaN, counts off the 16-lane vectors. */
static void test_quantize(const eb_q8_kernels *ks, size_t count) {
  float *x = malloc(sizeof(float) * count);
  int8_t *want = malloc(count), *got = malloc(count);
  const float scale = (float)(0.001 + rnd01() * 0.1);
  const int32_t zp = rint_in(-128, 127);
  for (size_t i = 0; i < count; i++) {
    switch (rnd() % 6) {
      case 0: x[i] = (float)((rint_in(-300, 300) + 0.5) * scale); break;
      case 1: x[i] = (float)(rint_in(-300, 300) * scale); break;
      case 2: x[i] = (float)((rnd01() - 0.5) * 2e3 * scale); break;
      case 3: {
        static const float odd[] = {INFINITY, -INFINITY, NAN, 0.0f, -0.0f, 1e30f, -1e30f, 1e-30f};
        x[i] = odd[rnd() % 8];
        break;
      }
      default: x[i] = (float)((rnd01() - 0.5) * 300.0 * scale); break;
    }
  }
  eb_ref_quantize_i8(count, x, scale, zp, want);
  memset(got, 0x55, count);
  ks->quantize(count, x, scale, zp, got);
  const int e = first_diff(want, got, count);
  CHECK(e < 0, "%s quantize count=%zu: [%d] x=%g got %d want %d", ks->name, count, e, e < 0 ? 0.0 : (double)x[e],
        e < 0 ? 0 : got[e], e < 0 ? 0 : want[e]);
  free(x), free(want), free(got);
}

/* GLOBAL_AVG_POOL against eb_ref_global_avgpool_i8: channel counts either side of the
 * kernel's 256-channel runs, 1x1 to 7x7 windows, batches, averages scaled up (left shift)
 * and down, fused activation ranges. */
static void test_global_avgpool(int n, int hw, int c) {
  const size_t count = (size_t)n * hw * c;
  int8_t *x = malloc(count), *want = malloc((size_t)n * c), *got = malloc((size_t)n * c);
  fill(x, count);
  const float si = (float)(0.01 + rnd01() * 0.2), so = (float)(si * (rnd() & 1 ? 0.05 + rnd01() : 1.0 + rnd01() * 4.0));
  eb_q8_io q = {rint_in(-128, 127), rint_in(-128, 127), -128, 127, 0};
  if (rnd() & 1) q.act_min = q.out_zp;
  eb_ref_global_avgpool_i8(n, hw, c, x, si, so, &q, want);
  memset(got, 0x55, (size_t)n * c);
  eb_q8_global_avgpool_portable(n, hw, c, x, si, so, &q, got);
  const int e = first_diff(want, got, (size_t)n * c);
  CHECK(e < 0, "global avgpool n=%d hw=%d c=%d: [%d] got %d want %d", n, hw, c, e, e < 0 ? 0 : got[e],
        e < 0 ? 0 : want[e]);
  free(x), free(want), free(got);
}

/* The requantization on its own, over accumulators and multipliers at the edges of int32. */
static void test_requant_edges(const eb_q8_kernels *ks) {
  static const int32_t accs[] = {0, 1, -1, 2, -2, 3, -3, 1 << 20, -(1 << 20), INT32_MAX, INT32_MIN, INT32_MIN + 1,
                                 0x40000000, -0x40000000, 12345678, -12345678, 0x3fffffff, -0x3fffffff};
  const int nacc = (int)(sizeof accs / sizeof accs[0]);
  static const double ms[] = {1e-9, 1.0 / 3, 0.5, 0.25, 0.999999, 1.0, 1.5, 3.0, 255.0, 1e-3, 7.5e-5};
  for (int mi = 0; mi < (int)(sizeof ms / sizeof ms[0]); mi++) {
    int32_t q;
    int sh;
    eb_quantize_multiplier(ms[mi], &q, &sh);
    /* FC with k = 1, x = 1 (zp 0), w = 1: acc = bias, so the bias carries the edge value */
    layer_q L = {{0, rint_in(-5, 5), -128, 127, 0}, 1, 1.0f, 1.0f, NULL, NULL, NULL, NULL};
    const int oc = 16;
    L.mult = malloc(sizeof(int32_t) * oc), L.shift = malloc(sizeof(int) * oc), L.bias = malloc(sizeof(int32_t) * oc);
    for (int r = 0; r < nacc; r += oc) {
      for (int o = 0; o < oc; o++) L.mult[o] = q, L.shift[o] = sh, L.bias[o] = accs[(r + o) % nacc];
      int8_t x[1] = {1}, w[16], want[16], got[16];
      memset(w, 0, sizeof w);
      eb_ref_fc_i8(1, 1, oc, x, w, L.bias, L.mult, L.shift, &L.q, want);
      gemm_plan P;
      make_gemm(&P, ks, 1, oc, w, &L, 1);
      for (int f = n_forms(&P.g.rq); f-- > 0; P.g.rq.fast = NULL) {
        ks->gemm(&P.g, 1, x, 1, got, oc);
        const int e = first_diff(want, got, oc);
        CHECK(e < 0, "%s requant (%s) m=%g acc=%d: got %d want %d", ks->name, form_name(&P.g.rq), ms[mi],
              e < 0 ? 0 : (int)L.bias[e], e < 0 ? 0 : got[e], e < 0 ? 0 : want[e]);
      }
      free_gemm(&P);
    }
    free(L.mult), free(L.shift), free(L.bias);
  }
}

/* How many requantizations in the tie test hit a tie of either rounding with a result that
 * the int8 clamp does not hide. */
static int srdhm_ties, pot_ties;
static void count_ties(int32_t acc, int32_t q, int shift) {
  const int lsh = shift > 0 ? shift : 0, rsh = shift > 0 ? 0 : -shift;
  const int32_t h = eb_mul_by_quantized_multiplier(acc, q, lsh), y = eb_mul_by_quantized_multiplier(acc, q, shift);
  if (y < -100 || y > 100) return;
  const int64_t p = (int64_t)(int32_t)(uint32_t)((uint64_t)(uint32_t)acc << lsh) * q;
  srdhm_ties += (p & 0x7fffffff) == 0x40000000;
  pot_ties += rsh > 0 && ((uint32_t)h & ((UINT32_C(1) << rsh) - 1u)) == UINT32_C(1) << (rsh - 1);
}

/* Ties of both roundings, hit on purpose. The doubling high multiply a * q / 2^31 is half way
 * exactly when q = odd * 2^z and a has 2-adic valuation 30 - z (a = acc << lsh): both are built
 * so for most channels. RoundingDivideByPOT's ties come with right shifts of 1..3 about every
 * 2^rsh-th value. Accumulators are scaled to the shift so that results land inside int8
 * (beyond it the clamp would hide a rounding), of either sign; a few are INT32_MIN/MAX. One
 * layer of k = 1 (acc = bias) per 16 channels. */
static void test_requant_ties(const eb_q8_kernels *ks) {
  const int oc = 16;
  for (int round = 0; round < 256; round++) {
    layer_q L = {{0, rint_in(-20, 20), -128, 127, 0}, 1, 1.0f, 1.0f, NULL, NULL, NULL, NULL};
    L.mult = malloc(sizeof(int32_t) * oc), L.shift = malloc(sizeof(int) * oc), L.bias = malloc(sizeof(int32_t) * oc);
    for (int o = 0; o < oc; o++) {
      int lsh = 0, rsh = 0, mag;
      if (round % 8 == 0) lsh = rint_in(1, 6), mag = rint_in(1, 8 - lsh);
      else rsh = (rnd() & 1) ? rint_in(1, 3) : rint_in(0, 31), mag = rsh + rint_in(1, 8);
      mag = mag > 30 ? 30 : mag;
      L.shift[o] = lsh ? lsh : -rsh;
      const int t = rint_in(0, mag - 1 < 10 - lsh ? mag - 1 : 10 - lsh); /* acc's valuation */
      const int32_t acc = (int32_t)(((rnd() & ((UINT32_C(1) << (mag - t)) - 1)) | 1) << t);
      const int z = rnd() % 4 ? 30 - t - lsh : rint_in(20, 29); /* a tie, or now and then not */
      L.mult[o] = (int32_t)(((uint32_t)(rint_in(0, (1 << (30 - z)) - 1) | 1) << z) | (UINT32_C(1) << 30));
      L.bias[o] = (rnd() & 1) ? -acc : acc;
      if (rnd() % 16 == 0) L.bias[o] = (rnd() & 1) ? INT32_MIN : INT32_MAX;
      count_ties(L.bias[o], L.mult[o], L.shift[o]);
    }
    int8_t x[1] = {1}, w[16] = {0}, want[16], got[16];
    eb_ref_fc_i8(1, 1, oc, x, w, L.bias, L.mult, L.shift, &L.q, want);
    gemm_plan P;
    make_gemm(&P, ks, 1, oc, w, &L, 1);
    for (int f = n_forms(&P.g.rq); f-- > 0; P.g.rq.fast = NULL) {
      ks->gemm(&P.g, 1, x, 1, got, oc);
      const int e = first_diff(want, got, oc);
      CHECK(e < 0, "%s requant ties (%s) q=%d shift=%d acc=%d: got %d want %d", ks->name, form_name(&P.g.rq),
            e < 0 ? 0 : (int)L.mult[e], e < 0 ? 0 : L.shift[e], e < 0 ? 0 : (int)L.bias[e], e < 0 ? 0 : got[e],
            e < 0 ? 0 : want[e]);
    }
    free_gemm(&P);
    free(L.mult), free(L.shift), free(L.bias);
  }
}

int main(void) {
  int nk;
  const eb_q8_kernels *ks = eb_q8_list(&nk);
  for (int v = 0; v < nk; v++) {
    const eb_q8_kernels *K = &ks[v];
    printf("variant %s\n", K->name);
    test_requant_edges(K);
    test_requant_ties(K);
    static const int ROWS[] = {1, 3, 4, 5, 17, 63, 64, 65, 130};
    static const int KS[] = {1, 3, 4, 5, 8, 16, 27, 63, 64, 65, 130, 300};
    for (int i = 0; i < 9; i++)
      for (int j = 0; j < 12; j++)
        for (int c = 0; c < NCH; c++)
          if ((i + j + c) % 3 == 0) test_fc(K, ROWS[i], KS[j], CH[c]);
    for (int c = 0; c < NCH; c++) {
      const int ic = CH[c];
      test_conv(K, 1, 9, 7, ic, CH[(c + 3) % NCH], 3, 2, 1, 1); /* stem-like */
      test_conv(K, 2, 6, 5, ic, CH[(c + 5) % NCH], 3, 1, 1, 1);
      test_conv(K, 1, 8, 8, ic, CH[(c + 1) % NCH], 5, 1, 2, 2);
      test_conv(K, 1, 7, 5, ic, CH[(c + 7) % NCH], 1, 2, 1, 0);
      test_conv(K, 1, 4, 3, ic, CH[c], 2, 1, 1, 0);
      for (int s = 1; s <= 2; s++)
        for (int pad = 0; pad <= 2; pad++) {
          test_dw(K, 1, 9, 8, ic, 3, s, 1, pad);
          test_dw(K, 2, 5, 7, ic, 3, s, 2, pad);
        }
      test_dw(K, 1, 11, 10, ic, 5, 2, 1, 2);
      test_dw(K, 1, 3, 3, ic, 3, 1, 1, 1);
    }
    /* more pixels than a chunk of the kernel's own im2col (splits inside output rows, whole
     * windows up to the input's last bytes), and rows too long for its stack buffer */
    test_conv(K, 1, 20, 19, 3, 32, 3, 2, 1, 1);
    test_conv(K, 1, 30, 30, 3, 17, 3, 1, 1, 1);
    test_conv(K, 2, 24, 23, 1, 16, 5, 1, 1, 2);
    test_conv(K, 1, 17, 16, 5, 24, 3, 2, 1, 0);
    for (int t = 0; t < 4; t++) { /* either kind of weights (random) */
      test_conv(K, 1, 4, 4, 455, 20, 3, 1, 1, 1); /* k = 4095: the kernels' own im2col, chunks of 4 rows */
      test_conv(K, 1, 4, 4, 520, 20, 3, 1, 1, 1); /* k = 4680: the GEMM reads the rows in place */
      test_fc(K, 5, 5000, 17);
      test_fc(K, 3, 4099, 33);
    }
    static const size_t COUNTS[] = {1, 3, 15, 16, 17, 64, 65, 1000, 4099};
    for (int i = 0; i < 9; i++)
      for (int t = 0; t < 7; t++) test_add(K, COUNTS[i], t < 3 ? 1 : t - 1);
    for (int t = 0; t < 24; t++) test_add_all_pairs(K, t);
    for (int i = 0; i < 9; i++)
      for (int t = 0; t < 3; t++) test_quantize(K, COUNTS[i]);
  }
  static const int GAP_C[] = {1, 15, 16, 17, 255, 256, 257, 1280};
  for (int i = 0; i < 8; i++)
    for (int hw = 1; hw <= 49; hw += 12) test_global_avgpool(1 + (i + hw) % 2, hw, GAP_C[i]);
  CHECK(one_shift_layers > 100, "only %d layers took the one-shift requantization", one_shift_layers);
  CHECK(srdhm_ties > 100 && pot_ties > 100, "ties: %d of the high multiply, %d of the shift", srdhm_ties, pot_ties);
  CHECK(pair_sum_layers > 100, "only %d GEMM layers ran with weights free of -128", pair_sum_layers);
  printf("%d passed, %d failed (%d layers also in the one-shift form, %d GEMMs with int16 pair sums; ties: %d + %d)\n",
         checks - failures, failures, one_shift_layers, pair_sum_layers, srdhm_ties, pot_ties);
  return failures != 0;
}
