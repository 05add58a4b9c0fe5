/* Kernel tests: every binary kernel variant the CPU can run (eb_kernels_list) must
 * equal the reference bit for bit on random shapes, for every entry point (conv,
 * FC, K-bit, HORQ, sign-pack, thresholded output, binary and float max-pool), whole and cut
 * into arbitrary tiles; the reference conv/FC must equal a naive +-1 integer loop
 * written here from the contract in ref/ref.h; and the threaded ops must give the
 * same bytes for 1, 2, 3 and 4 threads. Shapes are small so the test also runs
 * quickly under qemu (aarch64, armv7), which is where the NEON kernels are checked. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bin_ops.h"
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
/* Values of random_bits: < 0 random signs, 0 all +1, 1 all -1. */
static int bits_fill = -1;

static void random_bits(size_t rows, int c, int8_t *v, uint64_t *packed) {
  const size_t wpr = eb_words((size_t)c);
  memset(packed, 0, rows * wpr * sizeof *packed);
  for (size_t r = 0; r < rows; r++)
    for (int j = 0; j < c; j++) {
      const int neg = bits_fill < 0 ? (int)(rnd64() >> 63) : bits_fill;
      v[r * (size_t)c + (size_t)j] = neg ? -1 : 1;
      if (neg) packed[r * wpr + (size_t)j / 64] |= (uint64_t)1 << (unsigned)(j % 64);
    }
}

/* The contract of eb_ref_bconv2d_acc, one multiply at a time. */
static void naive_bconv(const eb_conv_geom *g, int pad_value, const int8_t *x, const int8_t *w, int32_t *acc) {
  const int groups = g->groups > 1 ? g->groups : 1, icg = g->ic / groups, ocg = g->oc / groups;
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
              for (int c = 0; c < icg; c++) {
                const int xv = in ? x[(((size_t)n * g->ih + iy) * g->iw + ix) * g->ic + (size_t)(o / ocg) * icg + c] : 1;
                s += xv * w[(((size_t)o * g->kh + ky) * g->kw + kx) * icg + c];
              }
            }
          acc[(((size_t)n * g->oh + oy) * g->ow + ox) * g->oc + o] = s;
        }
}

/* Packed weights as a session makes them (64-byte aligned). */
static void *packed_of(int oc, int kh, int kw, int ic, int planes, const uint64_t *w) {
  const size_t bytes = eb_bin_packed_bytes(oc, kh, kw, ic, planes);
  void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
  eb_bpack(oc, kh * kw, ic, planes, w, p);
  return p;
}

static int min_i(int a, int b) { return a < b ? a : b; }

/* The same conv computed as random tiles (rows x channel groups), each tile on
 * its own: what a thread pool does, minus the threads. */
static void conv_by_tiles(const eb_bin_kernels *k, const eb_conv_geom *g, int pad_value, int bits, const uint64_t *x,
                          const void *packed, const eb_bin_out *out) {
  const int rows = g->n * g->oh, align = out->bits || out->sbits ? EB_BITS_OC_ALIGN : EB_BPACK_OC_ALIGN;
  for (int r0 = 0; r0 < rows;) {
    const int r1 = min_i(rows, r0 + 1 + rnd(3));
    for (int oc0 = 0; oc0 < g->oc;) {
      const int oc1 = min_i(g->oc, oc0 + align * (1 + rnd(2)));
      if (bits) k->kbit_tile(g, bits, x, packed, out, r0, r1, oc0, oc1);
      else k->bconv_tile(g, pad_value, x, packed, out, r0, r1, oc0, oc1);
      oc0 = oc1;
    }
    r0 = r1;
  }
}

/* ---- output stages: raw accumulators, packed bits through thresholds, floats ---- */

/* OUT_FUSED: floats plus a residual ADD and the SIGN_PACK of the sum (Bi-Real's shortcut,
 * fused by the runtime), against ref's three separate stages. */
enum { OUT_ACC, OUT_BITS, OUT_F32, OUT_FUSED, N_OUT };
static const char *const OUT_NAME[N_OUT] = {"acc", "bits", "f32", "f32+add+sign"};

/* One output stage for `rows` x oc accumulators, its buffers, and the answer ref gives. */
typedef struct {
  int kind;
  size_t rows, bytes;
  eb_bin_out o;
  int32_t *thr, *dir, *scratch;
  float *mult, *bias, *res, *sthr, *scale, *shift;
  void *want, *got;
  uint64_t *swant, *sgot; /* OUT_FUSED: the signs of the sum */
  size_t sbytes;
} out_case;

/* Thresholds near the accumulators (a quarter exactly on one, for the ties),
 * every direction (0: never set); multipliers and biases of both signs, each
 * sometimes absent, clamps that bite or not. */
static void out_case_init(out_case *c, int kind, size_t rows, int oc, const int32_t *acc) {
  memset(c, 0, sizeof *c);
  c->kind = kind;
  c->rows = rows;
  c->bytes = kind == OUT_BITS ? rows * eb_words((size_t)oc) * 8 : rows * (size_t)oc * 4;
  c->want = malloc(c->bytes + 8);
  c->got = malloc(c->bytes + 8);
  c->scratch = malloc(rows * (size_t)oc * 4 + 4);
  c->o.acc = kind == OUT_ACC ? (int32_t *)c->got : c->scratch;
  if (kind == OUT_BITS) {
    c->thr = malloc((size_t)oc * 4);
    c->dir = malloc((size_t)oc * 4);
    for (int j = 0; j < oc; j++) {
      const int32_t a = acc[(size_t)rnd((int)rows) * (size_t)oc + (size_t)j];
      c->thr[j] = rnd(4) ? a + rnd(9) - 4 : a;
      c->dir[j] = rnd(5) ? (rnd(2) ? 1 : -1) * (1 + rnd(3)) : 0;
    }
    c->o.bits = c->got;
    c->o.thr = c->thr;
    c->o.dir = c->dir;
    eb_ref_acc_to_bits(rows, oc, acc, c->thr, c->dir, c->want);
  } else if (kind == OUT_F32 || kind == OUT_FUSED) {
    c->mult = malloc((size_t)oc * 4);
    c->bias = malloc((size_t)oc * 4);
    for (int j = 0; j < oc; j++) {
      c->mult[j] = (float)(rnd(2001) - 1000) / 337.0f;
      c->bias[j] = (float)(rnd(2001) - 1000) / 91.0f;
    }
    c->o.f32 = c->got;
    c->o.mult = rnd(4) ? c->mult : NULL;
    c->o.bias = rnd(4) ? c->bias : NULL;
    c->o.out_min = rnd(2) ? -INFINITY : -3.5f;
    c->o.out_max = rnd(2) ? INFINITY : 6.0f;
    eb_ref_acc_to_f32(rows, oc, acc, c->o.mult, c->o.bias, c->o.out_min, c->o.out_max, c->want);
    if (kind == OUT_FUSED) {
      /* residuals that cancel the conv's value exactly now and then (sign ties at 0) */
      c->res = malloc(rows * (size_t)oc * 4 + 4);
      c->sthr = malloc((size_t)oc * 4);
      for (size_t i = 0; i < rows * (size_t)oc; i++)
        c->res[i] = rnd(8) ? (float)(rnd(2001) - 1000) / 53.0f : -((float *)c->want)[i];
      for (int j = 0; j < oc; j++) c->sthr[j] = rnd(3) ? (float)(rnd(201) - 100) / 17.0f : 0.0f;
      /* QuickNet's ReLU and BatchNorm between the conv and the sum, each present or not */
      c->scale = malloc((size_t)oc * 4);
      c->shift = malloc((size_t)oc * 4);
      for (int j = 0; j < oc; j++) {
        c->scale[j] = (float)(rnd(2001) - 1000) / 411.0f;
        c->shift[j] = (float)(rnd(2001) - 1000) / 97.0f;
      }
      c->o.post = rnd(4);
      c->o.clamp_lo = rnd(2) ? 0.0f : -1.5f;
      c->o.clamp_hi = rnd(2) ? INFINITY : 6.0f;
      c->o.scale = c->scale;
      c->o.shift = c->shift;
      c->o.aff_lo = rnd(2) ? -INFINITY : -2.0f;
      c->o.aff_hi = rnd(2) ? INFINITY : 3.0f;
      if (c->o.post & EB_POST_CLAMP)
        eb_ref_clamp_f32(rows * (size_t)oc, c->want, c->o.clamp_lo, c->o.clamp_hi, c->want);
      if (c->o.post & EB_POST_AFFINE)
        eb_ref_affine_f32(rows, oc, c->want, c->scale, c->shift, c->o.aff_lo, c->o.aff_hi, c->want);
      for (size_t i = 0; i < rows * (size_t)oc; i++)
        if (!rnd(8)) c->res[i] = -((float *)c->want)[i];
      c->o.res = c->res;
      c->o.res_min = rnd(2) ? -INFINITY : -4.0f;
      c->o.res_max = rnd(2) ? INFINITY : 5.0f;
      c->o.sthr = rnd(3) ? c->sthr : NULL;
      c->sbytes = rows * eb_words((size_t)oc) * 8;
      c->swant = malloc(c->sbytes + 8);
      c->sgot = malloc(c->sbytes + 8);
      c->o.sbits = c->sgot;
      eb_ref_add_f32(rows * (size_t)oc, c->want, c->res, c->o.res_min, c->o.res_max, c->want);
      eb_ref_pack_f32(rows, oc, c->want, c->o.sthr, c->swant);
    }
  } else {
    memcpy(c->want, acc, c->bytes);
  }
}

/* A sentinel: unwritten outputs cannot match by luck. */
static void out_case_clear(out_case *c) {
  memset(c->got, 0xa5, c->bytes);
  if (c->sgot) memset(c->sgot, 0xa5, c->sbytes);
}
static int out_case_ok(const out_case *c) {
  return !memcmp(c->got, c->want, c->bytes) && (!c->sgot || !memcmp(c->sgot, c->swant, c->sbytes));
}

static void out_case_free(out_case *c) {
  free(c->want); free(c->got); free(c->scratch); free(c->thr); free(c->dir); free(c->mult); free(c->bias);
  free(c->res); free(c->sthr); free(c->swant); free(c->sgot); free(c->scale); free(c->shift);
}

static const int CHANNELS[] = {1, 3, 63, 64, 65, 130, 257};
#define N_CH ((int)(sizeof CHANNELS / sizeof CHANNELS[0]))

/* Random window geometry with ic input channels (output size implied by the pads). */
static eb_conv_geom random_geom(int ic, int stride, int dil, int max_oc) {
  eb_conv_geom g;
  memset(&g, 0, sizeof g);
  g.n = 1 + rnd(2);
  g.ic = ic;
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
  g.oc = 1 + rnd(max_oc);
  return g;
}

static void check_bconv(eb_conv_geom g, int pad_value, int saturate);

static void test_bconv_case(int ic, int stride, int dil, int pad_value) {
  /* up to 70 channels: one and several 32-channel groups, with tails */
  check_bconv(random_geom(ic, stride, dil, rnd(4) ? 9 : 70), pad_value, 0);
}

/* Grouped convs (LCE emits them): channels per group that start mid-word (ref
 * only), and multiples of 64 whose filters per group fill whole 32- or 64-channel
 * tiles, which run the fast kernels group by group. */
static void test_bconv_groups(void) {
  static const int CASES[][3] = {/* groups, in channels per group, filters per group */
                                 {2, 1, 1},  {3, 3, 2},    {2, 63, 5},  {2, 65, 3},  {3, 130, 4}, {2, 64, 32},
                                 {4, 64, 64}, {3, 128, 32}, {2, 64, 33}, {2, 192, 64}, {5, 64, 32}};
  for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
    for (int stride = 1; stride <= 2; stride++)
      for (int dil = 1; dil <= 2; dil++)
        for (int pv = 0; pv <= 1; pv++) {
          eb_conv_geom g = random_geom(CASES[i][0] * CASES[i][1], stride, dil, 1);
          g.groups = CASES[i][0];
          g.oc = CASES[i][0] * CASES[i][2];
          check_bconv(g, pv, 0);
        }
}

/* Windows of more taps than the kernels take at a time (64 tap pointers, 64
 * padding classes) and asymmetric borders: the chunked and uncached paths. */
static void test_bconv_big_window(void) {
  for (int pv = 0; pv <= 1; pv++) {
    eb_conv_geom g = {1, 10, 11, 65, 0, 0, 40, 9, 8, 1, 2, 1, 1, 4, 3, 1}; /* pads 4,3 top/left, 2,5 bottom/right */
    g.oh = (g.ih + g.pt + 2 - ((g.kh - 1) * g.dh + 1)) / g.sh + 1;
    g.ow = (g.iw + g.pl + 5 - ((g.kw - 1) * g.dw + 1)) / g.sw + 1;
    check_bconv(g, pv, 0);
  }
}

/* Every output channel count 1..130 (whole and partial register tiles, 64-channel
 * output words) on BinaryNet's shape: 3x3, pad 1, 32 input channels = 9 words per pixel. */
static void test_bconv_channels(void) {
  for (int oc = 1; oc <= 130; oc++) {
    eb_conv_geom g = {1, 6, 7, 32, 6, 7, oc, 3, 3, 1, 1, 1, 1, 1, 1, 1};
    check_bconv(g, oc % 2, 0);
  }
}

/* Every input bit against the opposite weight bit: each word step adds the most it
 * can (8) to every byte of a byte-counting variant (avx2, avx512bw), so a counter held
 * one step past its limit would wrap. Reductions from 1 word to far past that limit,
 * in one tap (1x1, FC-like) and over many taps, through tap pointers (borders) and rows. */
static void test_bconv_saturated(void) {
  static const int IC[] = {1, 64, 65, 64 * 30 + 1, 64 * 31, 64 * 31 + 1, 64 * 62 + 5};
  for (size_t i = 0; i < sizeof IC / sizeof IC[0]; i++)
    for (int k = 1; k <= 3; k += 2)
      for (int pv = 0; pv <= 1; pv++) {
        eb_conv_geom g = {1, 4, 5, IC[i], 4, 5, 1 + rnd(70), k, k, 1, 1, 1, 1, k / 2, k / 2, 1};
        check_bconv(g, pv, 1);
      }
}

/* saturate: x all +1 and w all -1 (test_bconv_saturated), else random signs. */
static void check_bconv(eb_conv_geom g, int pad_value, int saturate) {
  const int ic = g.ic, icg = ic / g.groups, pb = 0, pr = 0; /* pb, pr only reported: the caller drew them */
  const size_t wpr = eb_words((size_t)ic), wprg = eb_words((size_t)icg);
  const size_t xpix = (size_t)g.n * g.ih * g.iw, taps = (size_t)g.oc * g.kh * g.kw;
  const size_t nacc = (size_t)g.n * g.oh * g.ow * g.oc;
  int8_t *xv = malloc(xpix * ic), *wv = malloc(taps * icg);
  uint64_t *xb = malloc(xpix * wpr * 8), *wb = malloc(taps * wprg * 8);
  int32_t *want = malloc(nacc * 4), *ref = malloc(nacc * 4), *got = malloc(nacc * 4);
  bits_fill = saturate ? 0 : -1;
  random_bits(xpix, ic, xv, xb);
  bits_fill = saturate ? 1 : -1;
  random_bits(taps, icg, wv, wb);
  bits_fill = -1;
  naive_bconv(&g, pad_value, xv, wv, want);
  memset(ref, 0x5a, nacc * 4);
  eb_ref_bconv2d_acc(&g, pad_value, xb, wb, ref);
  CHECK(!memcmp(ref, want, nacc * 4), "ref bconv != naive: ic=%d groups=%d k=%dx%d s=%d,%d d=%d,%d pad=%d,%d,%d,%d pv=%d",
        ic, g.groups, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl, pb, pr, pad_value);
  void *packed = packed_of(g.oc, g.kh, g.kw, icg, 1, wb);
  int nk;
  const eb_bin_kernels *ks = eb_kernels_list(&nk);
  const size_t rows = (size_t)g.n * g.oh * g.ow;
  for (int kind = 0; kind < N_OUT; kind++) {
    out_case oc;
    out_case_init(&oc, kind, rows, g.oc, ref);
    for (int i = 0; i < nk; i++) { /* ref too: its accumulate-then-output path in bin_ops */
      out_case_clear(&oc);
      eb_bin_conv(NULL, &ks[i], &g, pad_value, xb, wb, packed, &oc.o);
      CHECK(out_case_ok(&oc), "%s bconv (%s out) != ref: n=%d ic=%d oc=%d groups=%d in=%dx%d k=%dx%d s=%d,%d d=%d,%d pad=%d,%d,%d,%d pv=%d",
            ks[i].name, OUT_NAME[kind], g.n, ic, g.oc, g.groups, g.ih, g.iw, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt,
            g.pl, pb, pr, pad_value);
      if (!i || g.groups > 1) continue; /* the tiles of a grouped conv are eb_bin_conv's own */
      out_case_clear(&oc);
      conv_by_tiles(&ks[i], &g, pad_value, 0, xb, packed, &oc.o);
      CHECK(out_case_ok(&oc), "%s bconv tiles (%s out) != ref: ic=%d oc=%d", ks[i].name, OUT_NAME[kind], ic, g.oc);
    }
    out_case_free(&oc);
  }
  free(packed);
  free(xv); free(wv); free(xb); free(wb); free(want); free(ref); free(got);
}

static void test_bfc_case(int k) {
  const int n = 1 + rnd(8), o = 1 + rnd(rnd(2) ? 11 : 100);
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
  void *packed = packed_of(o, 1, 1, k, 1, wb);
  int nk;
  const eb_bin_kernels *ks = eb_kernels_list(&nk);
  for (int kind = 0; kind < N_OUT; kind++) {
    out_case oc;
    out_case_init(&oc, kind, (size_t)n, o, ref);
    for (int i = 0; i < nk; i++) {
      out_case_clear(&oc);
      eb_bin_fc(NULL, &ks[i], n, k, o, xb, wb, packed, &oc.o);
      CHECK(out_case_ok(&oc), "%s bfc (%s out) != ref: n=%d k=%d o=%d", ks[i].name, OUT_NAME[kind], n, k, o);
    }
    out_case_free(&oc);
  }
  (void)got;
  free(packed);
  free(xv); free(wv); free(xb); free(wb); free(want); free(ref); free(got);
}


/* Floats around the HWGQ / sign thresholds: exact ties, zeros of both signs, NaN. */
static float random_float(void) {
  switch (rnd(16)) {
    case 0: return 0.0f;
    case 1: return -0.0f;
    case 2: return NAN;
    case 3: return 0.25f * (float)(rnd(9) - 2); /* exact multiples of the step */
    default: return (float)((int)(rnd64() % 20001) - 8000) / 4000.0f;
  }
}

static void random_floats(size_t n, float *v) {
  for (size_t i = 0; i < n; i++) v[i] = random_float();
}

static void random_words(size_t rows, int c, uint64_t *w) {
  int8_t *tmp = malloc(rows * (size_t)c + 1);
  random_bits(rows, c, tmp, w);
  free(tmp);
}

static void test_kbit_case(int ic, int stride, int dil) {
  eb_conv_geom g = random_geom(ic, stride, dil, rnd(3) ? 9 : 40);
  const int bits = 1 + rnd(4);
  const float step = 0.25f;
  const size_t xn = (size_t)g.n * g.ih * g.iw * ic, taps = (size_t)g.oc * g.kh * g.kw;
  const size_t nacc = (size_t)g.n * g.oh * g.ow * g.oc, sb = eb_ref_kbit_scratch(&g, bits);
  float *x = malloc(xn * 4);
  uint64_t *wb = malloc(taps * eb_words((size_t)ic) * 8), *scratch = malloc(sb + 8);
  int32_t *ref = malloc(nacc * 4), *got = malloc(nacc * 4);
  random_floats(xn, x);
  random_words(taps, ic, wb);
  eb_ref_kbit_conv2d_acc(&g, bits, step, x, wb, ref, scratch);
  void *packed = packed_of(g.oc, g.kh, g.kw, ic, bits, wb);
  int nk;
  const eb_bin_kernels *ks = eb_kernels_list(&nk);
  for (int kind = 0; kind < N_OUT; kind += 2) { /* the op's outputs: acc (tests) and f32 */
    out_case oc;
    out_case_init(&oc, kind, nacc / (size_t)g.oc, g.oc, ref);
    for (int i = 0; i < nk; i++) {
      out_case_clear(&oc);
      eb_bin_kbit(NULL, &ks[i], &g, bits, step, x, wb, packed, &oc.o, scratch);
      CHECK(out_case_ok(&oc), "%s kbit (%s out) != ref: bits=%d ic=%d oc=%d k=%dx%d s=%d,%d d=%d,%d", ks[i].name,
            OUT_NAME[kind], bits, ic, g.oc, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw);
      if (!i) continue;
      out_case_clear(&oc);
      conv_by_tiles(&ks[i], &g, 0, bits, scratch, packed, &oc.o); /* scratch still holds the planes */
      CHECK(out_case_ok(&oc), "%s kbit tiles (%s out) != ref: bits=%d ic=%d oc=%d", ks[i].name, OUT_NAME[kind], bits,
            ic, g.oc);
    }
    out_case_free(&oc);
  }
  (void)got;
  free(packed); free(x); free(wb); free(scratch); free(ref); free(got);
}

static void test_horq_case(int ic, int stride, int dil) {
  eb_conv_geom g = random_geom(ic, stride, dil, rnd(3) ? 9 : 40);
  const int order = 1 + rnd(6);
  const size_t xn = (size_t)g.n * g.ih * g.iw * ic, taps = (size_t)g.oc * g.kh * g.kw;
  const size_t pix = (size_t)g.n * g.oh * g.ow, nacc = pix * order * g.oc;
  float *x = malloc(xn * 4), *bref = malloc(pix * order * 4), *bgot = malloc(pix * order * 4);
  uint64_t *wb = malloc(taps * eb_words((size_t)ic) * 8);
  void *scratch = aligned_alloc(64, eb_bin_horq_scratch(&g, order));
  int32_t *ref = malloc(nacc * 4), *got = malloc(nacc * 4);
  random_floats(xn, x);
  for (size_t i = 0; i < xn; i++)
    if (isnan(x[i])) x[i] = 1.5f; /* NaN poisons beta; the float path is the reference's either way */
  random_words(taps, ic, wb);
  eb_ref_horq_conv2d_acc(&g, order, x, wb, ref, bref, scratch);
  void *packed = packed_of(g.oc, g.kh, g.kw, ic, 1, wb);
  int nk;
  const eb_bin_kernels *ks = eb_kernels_list(&nk);
  for (int i = 1; i < nk; i++) {
    memset(got, 0xa5, nacc * 4);
    memset(bgot, 0xa5, pix * order * 4);
    eb_bin_horq(NULL, &ks[i], &g, order, x, wb, packed, got, bgot, scratch);
    CHECK(!memcmp(got, ref, nacc * 4) && !memcmp(bgot, bref, pix * order * 4),
          "%s horq != ref: order=%d ic=%d oc=%d k=%dx%d", ks[i].name, order, ic, g.oc, g.kh, g.kw);
  }
  free(packed); free(x); free(bref); free(bgot); free(wb); free(scratch); free(ref); free(got);
}

static void test_rows_case(int c) {
  const size_t rows = 1 + (size_t)rnd(5), wpr = eb_words((size_t)c);
  float *x = malloc(rows * c * 4), *thr = malloc((size_t)c * 4);
  int32_t *acc = malloc(rows * c * 4), *ithr = malloc((size_t)c * 4), *dir = malloc((size_t)c * 4);
  uint64_t *ref = malloc(rows * wpr * 8), *got = malloc(rows * wpr * 8);
  random_floats(rows * c, x);
  random_floats((size_t)c, thr);
  for (size_t i = 0; i < rows * (size_t)c; i++) acc[i] = rnd(21) - 10;
  for (int j = 0; j < c; j++) {
    ithr[j] = rnd(21) - 10;
    dir[j] = rnd(2) ? 1 : -1;
  }
  int nk;
  const eb_bin_kernels *ks = eb_kernels_list(&nk);
  for (int with_thr = 0; with_thr <= 1; with_thr++) {
    eb_ref_pack_f32(rows, c, x, with_thr ? thr : NULL, ref);
    for (int i = 1; i < nk; i++) {
      memset(got, 0xa5, rows * wpr * 8);
      ks[i].pack_f32(rows, c, x, with_thr ? thr : NULL, got);
      CHECK(!memcmp(got, ref, rows * wpr * 8), "%s pack_f32 != ref: rows=%zu c=%d thr=%d", ks[i].name, rows, c, with_thr);
    }
  }
  eb_ref_acc_to_bits(rows, c, acc, ithr, dir, ref);
  for (int i = 1; i < nk; i++) {
    memset(got, 0xa5, rows * wpr * 8);
    ks[i].acc_to_bits(rows, c, acc, ithr, dir, got);
    CHECK(!memcmp(got, ref, rows * wpr * 8), "%s acc_to_bits != ref: rows=%zu c=%d", ks[i].name, rows, c);
  }
  free(x); free(thr); free(acc); free(ithr); free(dir); free(ref); free(got);
}

static void test_bmaxpool_case(int ic, int stride) {
  eb_conv_geom g = random_geom(ic, stride, 1, 1);
  g.dw = 1; /* pooling has no dilation */
  const int span_w = g.kw, pr = rnd(span_w);
  if (g.pl >= span_w) g.pl = span_w - 1;
  if (g.iw + g.pl + pr < span_w) g.iw = span_w;
  g.ow = (g.iw + g.pl + pr - span_w) / g.sw + 1;
  g.oc = ic;
  const size_t wpr = eb_words((size_t)ic), ny = (size_t)g.n * g.oh * g.ow * wpr;
  uint64_t *x = malloc((size_t)g.n * g.ih * g.iw * wpr * 8), *ref = malloc(ny * 8), *got = malloc(ny * 8);
  random_words((size_t)g.n * g.ih * g.iw, ic, x);
  eb_ref_bmaxpool(&g, x, ref);
  int nk;
  const eb_bin_kernels *ks = eb_kernels_list(&nk);
  for (int i = 1; i < nk; i++) {
    memset(got, 0xa5, ny * 8);
    eb_bin_maxpool(NULL, &ks[i], &g, x, got);
    CHECK(!memcmp(got, ref, ny * 8), "%s bmaxpool != ref: ic=%d k=%dx%d s=%d,%d", ks[i].name, ic, g.kh, g.kw, g.sh, g.sw);
  }
  free(x); free(ref); free(got);
}

/* Float max pooling with the signs of its output (a banded stem's pool, band.c): y as
 * eb_ref_maxpool_f32 and the bits as eb_ref_pack_f32 of it, byte for byte, whole and in
 * random row tiles, each tile reading a copy of just the input rows its windows need (as
 * a band buffer holds them). */
static void test_fmaxpool_case(int ic, int stride, int dil) {
  eb_conv_geom g = random_geom(ic, stride, dil, 1);
  g.oc = ic;
  const size_t wpr = eb_words((size_t)ic), rows = (size_t)g.n * g.oh, npix = rows * g.ow;
  const size_t nx = (size_t)g.n * g.ih * g.iw * ic;
  float *x = malloc(nx * 4), *thr = malloc((size_t)ic * 4), *ref = malloc(npix * ic * 4), *got = malloc(npix * ic * 4);
  float *band = malloc(nx * 4);
  uint64_t *rbits = malloc(npix * wpr * 8), *gbits = malloc(npix * wpr * 8);
  random_floats(nx, x);
  for (size_t i = 0; i < nx; i += 7) x[i] = x[i / 2]; /* ties */
  random_floats((size_t)ic, thr);
  eb_ref_maxpool_f32(&g, x, ref);
  int nk;
  const eb_bin_kernels *ks = eb_kernels_list(&nk);
  for (int with_thr = 0; with_thr <= 1; with_thr++) {
    const float *t = with_thr ? thr : NULL;
    eb_ref_pack_f32(npix, ic, ref, t, rbits);
    for (int i = 1; i < nk; i++) {
      memset(got, 0xa5, npix * ic * 4);
      memset(gbits, 0xa5, npix * wpr * 8);
      ks[i].maxpool_f32_tile(&g, x, 0, t, got, gbits, 0, (int)rows);
      CHECK(!memcmp(got, ref, npix * ic * 4) && !memcmp(gbits, rbits, npix * wpr * 8),
            "%s maxpool_f32 != ref: ic=%d k=%dx%d s=%d,%d d=%d,%d", ks[i].name, ic, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw);
      memset(got, 0xa5, npix * ic * 4);
      memset(gbits, 0xa5, npix * wpr * 8);
      for (int r0 = 0; r0 < (int)rows;) {
        const int step = 1 + rnd(3), r1 = r0 + step < (int)rows ? r0 + step : (int)rows;
        int lo = g.n * g.ih, hi = 0; /* input rows (of n*ih) the tile's windows read */
        for (int r = r0; r < r1; r++)
          for (int ky = 0; ky < g.kh; ky++) {
            const int iy = (r % g.oh) * g.sh - g.pt + ky * g.dh, row = (r / g.oh) * g.ih + iy;
            if (iy < 0 || iy >= g.ih) continue;
            if (row < lo) lo = row;
            if (row + 1 > hi) hi = row + 1;
          }
        const size_t row_floats = (size_t)g.iw * ic;
        if (hi > lo) memcpy(band, x + (size_t)lo * row_floats, (size_t)(hi - lo) * row_floats * 4);
        ks[i].maxpool_f32_tile(&g, band, lo, t, got, with_thr ? gbits : NULL, r0, r1);
        r0 = r1;
      }
      CHECK(!memcmp(got, ref, npix * ic * 4) && (!with_thr || !memcmp(gbits, rbits, npix * wpr * 8)),
            "%s maxpool_f32 in row bands != ref: ic=%d k=%dx%d", ks[i].name, ic, g.kh, g.kw);
    }
  }
  free(x); free(thr); free(ref); free(got); free(band); free(rbits); free(gbits);
}

/* Larger layers through the threaded ops: 1, 2, 3 and 4 threads, same bytes
 * (and the same as ref). Without pthreadpool in the build the pools are NULL and
 * this checks the single-threaded path only. */
static void test_threads(void) {
  int nk;
  const eb_bin_kernels *ks = eb_kernels_list(&nk);
  const eb_bin_kernels *best = &ks[nk - 1];
  eb_conv_geom g = {1, 9, 11, 130, 9, 11, 100, 3, 3, 1, 1, 1, 1, 1, 1, 1};
  const size_t wpr = eb_words(130), nx = (size_t)9 * 11 * wpr, nacc = (size_t)9 * 11 * 100;
  uint64_t *x = malloc(nx * 8), *w = malloc((size_t)100 * 9 * wpr * 8), *bits1 = malloc(99 * 2 * 8), *bitsn = malloc(99 * 2 * 8);
  int32_t *ref = malloc(nacc * 4), *got = malloc(nacc * 4), *thr = malloc(100 * 4), *dir = malloc(100 * 4);
  float *xf = malloc((size_t)9 * 11 * 130 * 4), *beta1 = malloc(99 * 3 * 4), *betan = malloc(99 * 3 * 4);
  int32_t *h1 = malloc(nacc * 3 * 4), *hn = malloc(nacc * 3 * 4);
  uint64_t *scratch = malloc(eb_ref_kbit_scratch(&g, 2) + 8);
  void *hscratch = aligned_alloc(64, eb_bin_horq_scratch(&g, 3));
  random_words((size_t)9 * 11, 130, x);
  random_words((size_t)100 * 9, 130, w);
  random_floats((size_t)9 * 11 * 130, xf);
  for (int j = 0; j < 100; j++) {
    thr[j] = rnd(41) - 20;
    dir[j] = rnd(2) ? 1 : -1;
  }
  void *packed = packed_of(100, 3, 3, 130, 1, w), *kpacked = packed_of(100, 3, 3, 130, 2, w);
  eb_ref_bconv2d_acc(&g, 0, x, w, ref);
  eb_ref_acc_to_bits(99, 100, ref, thr, dir, bits1);
  out_case outs[N_OUT];
  for (int kind = 0; kind < N_OUT; kind++) out_case_init(&outs[kind], kind, 99, 100, ref);
  for (int t = 1; t <= 4; t++) {
    eb_pool *pool = eb_pool_create(t);
    for (int kind = 0; kind < N_OUT; kind++) { /* every output stage, fused in the tiles */
      out_case_clear(&outs[kind]);
      eb_bin_conv(pool, best, &g, 0, x, w, packed, &outs[kind].o);
      CHECK(out_case_ok(&outs[kind]), "%s bconv (%s out) with %d threads != ref", best->name, OUT_NAME[kind], t);
    }
    memcpy(got, outs[OUT_ACC].got, nacc * 4);
    eb_bin_to_bits(pool, best, 99, 100, got, thr, dir, bitsn);
    CHECK(!memcmp(bitsn, bits1, 99 * 2 * 8), "%s acc_to_bits with %d threads differs", best->name, t);
    eb_pool_free(pool);
  }
  for (int kind = 0; kind < N_OUT; kind++) out_case_free(&outs[kind]);
  /* FC 1 x 1430 -> 100, K-bit and HORQ: compare each thread count with 1 thread */
  {
    int32_t *f1 = malloc(100 * 4), *fn = malloc(100 * 4);
    uint64_t *wf = malloc((size_t)100 * eb_words(1430) * 8);
    random_words(100, 1430, wf);
    void *fp = packed_of(100, 1, 1, 1430, 1, wf);
    eb_ref_bfc_acc(1, 1430, 100, x, wf, f1);
    eb_ref_kbit_conv2d_acc(&g, 2, 0.25f, xf, w, ref, scratch);
    eb_pool *p1 = eb_pool_create(1);
    eb_bin_horq(p1, best, &g, 3, xf, w, packed, h1, beta1, hscratch);
    eb_pool_free(p1);
    out_case fbits, kf32;
    out_case_init(&fbits, OUT_BITS, 1, 100, f1);
    out_case_init(&kf32, OUT_F32, 99, 100, ref);
    for (int t = 1; t <= 4; t++) {
      eb_pool *pool = eb_pool_create(t);
      const eb_bin_out fo = {fn, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, 0, 0, NULL, NULL, 0, 0}, ko = {got, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, 0, 0, NULL, NULL, 0, 0};
      eb_bin_fc(pool, best, 1, 1430, 100, x, wf, fp, &fo);
      CHECK(!memcmp(fn, f1, 100 * 4), "%s bfc with %d threads != ref", best->name, t);
      out_case_clear(&fbits);
      eb_bin_fc(pool, best, 1, 1430, 100, x, wf, fp, &fbits.o);
      CHECK(out_case_ok(&fbits), "%s bfc (bits out) with %d threads != ref", best->name, t);
      memset(got, 0xa5, nacc * 4);
      eb_bin_kbit(pool, best, &g, 2, 0.25f, xf, w, kpacked, &ko, scratch);
      CHECK(!memcmp(got, ref, nacc * 4), "%s kbit with %d threads != ref", best->name, t);
      out_case_clear(&kf32);
      eb_bin_kbit(pool, best, &g, 2, 0.25f, xf, w, kpacked, &kf32.o, scratch);
      CHECK(out_case_ok(&kf32), "%s kbit (f32 out) with %d threads != ref", best->name, t);
      eb_bin_horq(pool, best, &g, 3, xf, w, packed, hn, betan, hscratch);
      CHECK(!memcmp(hn, h1, nacc * 3 * 4) && !memcmp(betan, beta1, 99 * 3 * 4), "%s horq with %d threads differs",
            best->name, t);
      eb_pool_free(pool);
    }
    out_case_free(&fbits);
    out_case_free(&kf32);
    free(f1); free(fn); free(wf); free(fp);
  }
  free(packed); free(kpacked); free(x); free(w); free(bits1); free(bitsn); free(ref); free(got); free(thr); free(dir);
  free(xf); free(beta1); free(betan); free(h1); free(hn); free(scratch); free(hscratch);
}

/* A grouped conv through the threaded group-by-group path: same bytes as ref for
 * 1 to 4 threads, every output stage. */
static void test_group_threads(void) {
  int nk;
  const eb_bin_kernels *ks = eb_kernels_list(&nk);
  const eb_bin_kernels *best = &ks[nk - 1];
  eb_conv_geom g = {1, 7, 9, 256, 7, 9, 256, 3, 3, 1, 1, 1, 1, 1, 1, 2};
  const size_t nx = (size_t)7 * 9, nacc = nx * 256;
  uint64_t *x = malloc(nx * 4 * 8), *w = malloc((size_t)256 * 9 * 2 * 8);
  int32_t *ref = malloc(nacc * 4);
  random_words(nx, 256, x);
  random_words((size_t)256 * 9, 128, w);
  void *packed = packed_of(256, 3, 3, 128, 1, w);
  eb_ref_bconv2d_acc(&g, 0, x, w, ref);
  out_case outs[N_OUT];
  for (int kind = 0; kind < N_OUT; kind++) out_case_init(&outs[kind], kind, nx, 256, ref);
  for (int t = 1; t <= 4; t++) {
    eb_pool *pool = eb_pool_create(t);
    for (int kind = 0; kind < N_OUT; kind++) {
      out_case_clear(&outs[kind]);
      eb_bin_conv(pool, best, &g, 0, x, w, packed, &outs[kind].o);
      CHECK(out_case_ok(&outs[kind]), "%s grouped bconv (%s out) with %d threads != ref", best->name, OUT_NAME[kind], t);
    }
    eb_pool_free(pool);
  }
  for (int kind = 0; kind < N_OUT; kind++) out_case_free(&outs[kind]);
  free(packed); free(x); free(w); free(ref);
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
  test_bconv_big_window();
  test_bconv_channels();
  test_bconv_saturated();
  test_bconv_groups();
  for (int c = 0; c < N_CH; c++)
    for (int rep = 0; rep < 4; rep++) test_bfc_case(CHANNELS[c] * (1 + rep % 2));
  for (int c = 0; c < N_CH; c++)
    for (int stride = 1; stride <= 2; stride++)
      for (int dil = 1; dil <= 2; dil++) {
        test_kbit_case(CHANNELS[c], stride, dil);
        test_horq_case(CHANNELS[c], stride, dil);
      }
  for (int c = 0; c < N_CH; c++)
    for (int rep = 0; rep < 3; rep++) {
      test_rows_case(CHANNELS[c] * (1 + rep));
      test_bmaxpool_case(CHANNELS[c], 1 + rep % 2);
      test_fmaxpool_case(CHANNELS[c], 1 + rep % 2, 1 + rep / 2);
    }
  test_threads();
  test_group_threads();
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures != 0;
}
