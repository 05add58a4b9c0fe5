/* Portable int8 kernels (the target's baseline ISA), weight packing and the run-time
 * pick of the int8 variant. */
#include <stdlib.h>
#include <string.h>

#if defined(EB_HAVE_NEON_KERNELS) && defined(__arm__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_NEON
#define HWCAP_NEON (1 << 12) /* asm/hwcap.h on 32-bit ARM */
#endif
#ifndef HWCAP_VFPv4
#define HWCAP_VFPv4 (1 << 16)
#endif
#endif

#define EB_Q8_SUFFIX portable
#define EB_Q8_WITH_GEMM
#include "q8/q8_impl.h"

static int round_up(int v, int m) { return (v + m - 1) / m * m; }

size_t eb_q8_packed_bytes(int k, int oc) {
  /* the VNNI layout pads k to whole groups of 4; the others fit inside that */
  return (size_t)round_up(k, 4) * (size_t)round_up(oc, EB_Q8_BLOCK);
}

/* Where weight (o, i) of a panel goes in ks's layout. */
static size_t packed_at(int layout, int k, int ocp, int o, int i) {
  const int blk = o / EB_Q8_BLOCK, p = blk / EB_Q8_NB, j = o % (EB_Q8_BLOCK * EB_Q8_NB);
  const int blocks = ocp / EB_Q8_BLOCK, nb = blocks - p * EB_Q8_NB < EB_Q8_NB ? blocks - p * EB_Q8_NB : EB_Q8_NB;
  switch (layout) {
    case EB_Q8_LAYOUT_VNNI:
      return (size_t)p * EB_Q8_NB * EB_Q8_BLOCK * round_up(k, 4) + ((size_t)(i / 4) * nb * EB_Q8_BLOCK + j) * 4 + i % 4;
    case EB_Q8_LAYOUT_K2:
      return ((size_t)blk * round_up(k, 2) + (size_t)(i / 2) * 2) * EB_Q8_BLOCK + (size_t)(o % EB_Q8_BLOCK) * 2 + i % 2;
    default:
      return (size_t)p * EB_Q8_NB * EB_Q8_BLOCK * k + (size_t)i * nb * EB_Q8_BLOCK + j;
  }
}

int32_t eb_q8_pack_gemm(const eb_q8_kernels *ks, int k, int oc, const int8_t *w, int32_t w_zp, const int32_t *bias,
                        int32_t x_zp, void *packed, int32_t *colterm) {
  const int ocp = round_up(oc, EB_Q8_BLOCK), vnni = ks->layout == EB_Q8_LAYOUT_VNNI;
  uint8_t *out = packed;
  memset(out, 0, eb_q8_packed_bytes(k, oc));
  for (int o = 0; o < ocp; o++) {
    if (o >= oc) {
      colterm[o] = 0;
      continue; /* padding channels: zero weights (also zero as u8), never stored */
    }
    const int8_t *wo = w + (size_t)o * k;
    uint32_t sum = 0;
    for (int i = 0; i < k; i++) {
      sum += (uint32_t)(int32_t)wo[i];
      out[packed_at(ks->layout, k, ocp, o, i)] = (uint8_t)wo[i];
    }
    /* colterm = bias - x_zp * (sum w - k w_zp) [- 128 sum w for the VNNI layout], modulo 2^32 (see q8.h) */
    const uint32_t wsum = sum - (uint32_t)k * (uint32_t)w_zp;
    colterm[o] = (int32_t)((uint32_t)(bias ? bias[o] : 0) - (uint32_t)x_zp * wsum - (vnni ? 128u * sum : 0u));
  }
  return w_zp;
}

int eb_q8_w_no_min(const int8_t *w, size_t n) { return memchr(w, 0x80, n) == NULL; }

void eb_q8_fill_requant(int oc, int ocp, const int32_t *q, const int *shift, int32_t *mult, int32_t *lsh,
                        int32_t *rsh) {
  for (int o = 0; o < ocp; o++) {
    const int s = o < oc ? shift[o] : 0;
    mult[o] = o < oc ? q[o] : 0;
    lsh[o] = s > 0 ? (s > 32 ? 32 : s) : 0;
    rsh[o] = s > 0 ? 0 : -s;
  }
}

size_t eb_q8_fast_bytes(int ocp) { return (size_t)ocp / EB_Q8_BLOCK * EB_Q8_FAST_BLOCK * sizeof(int64_t); }

void eb_q8_fill_fast(int ocp, const int32_t *mult, const int32_t *rsh, int64_t *fast) {
  for (int o = 0; o < ocp; o++) {
    const int r = rsh[o], odd = o % 2;
    int64_t *blk = fast + (size_t)(o / EB_Q8_BLOCK) * EB_Q8_FAST_BLOCK;
    const int lane = (o % EB_Q8_BLOCK) / 2 + odd * (EB_Q8_BLOCK / 2);
    blk[lane] = (INT64_C(1) << 30) + (r ? INT64_C(1) << (30 + r) : 0);
    blk[EB_Q8_BLOCK + lane] = 31 + r;
    blk[2 * EB_Q8_BLOCK + lane] = r ? INT64_C(1) << 31 : 0;
    if (odd) blk[3 * EB_Q8_BLOCK + lane - EB_Q8_BLOCK / 2] = mult[o];
  }
}

size_t eb_q8_dw_pack_bytes(int kh, int kw, int c) {
  const size_t blocks = (size_t)(c + 31) / 32, pairs = (size_t)(kh * kw + 1) / 2;
  return blocks * (pairs * 2 * 64 + 2 * EB_Q8_DW_HALF);
}

void eb_q8_dw_pack(int kh, int kw, int c, int cp, const int32_t *w, const int32_t *bias_in, const int32_t *mult,
                   const int32_t *lsh, const int32_t *rsh, void *out) {
  const int blocks = (c + 31) / 32, np = (kh * kw + 1) / 2;
  uint8_t *o = out;
  for (int b = 0; b < blocks; b++) {
    int16_t *wb = (int16_t *)o;
    for (int h = 0; h < 2; h++) {
      uint8_t *half = o + (size_t)np * 2 * 64 + (size_t)h * EB_Q8_DW_HALF;
      int32_t *bi = (int32_t *)half, *m = bi + 16, *l = m + 16, r[16];
      for (int k = 0; k < 16; k++) {
        /* unpacklo/hi_epi16 put channels 8L..8L+3 / 8L+4..8L+7 of each 128-bit lane L in dwords 4L.. */
        const int ch = 32 * b + 8 * (k / 4) + 4 * h + k % 4, in = ch < c;
        for (int p = 0; p < np; p++)
          for (int j = 0; j < 2; j++) {
            const int t = eb_q8_dw_pair_tap(kh, kw, p, j);
            wb[((size_t)(p * 2 + h) * 16 + k) * 2 + j] = (int16_t)(in && t >= 0 ? w[(size_t)t * cp + ch] : 0);
          }
        bi[k] = in ? bias_in[ch] : 0;
        m[k] = in ? mult[ch] : 0;
        l[k] = in ? lsh[ch] : 0;
        r[k] = in ? rsh[ch] : 0;
      }
      eb_q8_fill_fast(16, m, r, (int64_t *)(l + 16));
    }
    o += (size_t)np * 2 * 64 + 2 * EB_Q8_DW_HALF;
  }
}

static void split(int32_t q, int shift, int32_t *m, int32_t *l, int32_t *r) {
  *m = q;
  *l = shift > 0 ? (shift > 32 ? 32 : shift) : 0;
  *r = shift > 0 ? 0 : -shift;
}

void eb_q8_add_init(eb_q8_add *a, float a_scale, int32_t a_zp, float b_scale, int32_t b_zp, float y_scale,
                    const eb_q8_io *q) {
  /* the same multipliers as eb_ref_add_i8, computed once */
  const double twice_max = 2.0 * (double)(a_scale > b_scale ? a_scale : b_scale);
  int32_t m;
  int s;
  memset(a, 0, sizeof *a);
  a->a_zp = a_zp;
  a->b_zp = b_zp;
  eb_quantize_multiplier((double)a_scale / twice_max, &m, &s);
  split(m, s, &a->ma, &a->la, &a->ra);
  eb_quantize_multiplier((double)b_scale / twice_max, &m, &s);
  split(m, s, &a->mb, &a->lb, &a->rb);
  eb_quantize_multiplier(twice_max / ((double)(1 << 20) * (double)y_scale), &m, &s);
  split(m, s, &a->my, &a->ly, &a->ry);
  a->out_zp = q->out_zp;
  a->act_min = q->act_min;
  a->act_max = q->act_max;
}

void eb_q8_dw_biases(int taps, int c, int cp, const int32_t *w, const int32_t *bias, int32_t in_zp, int32_t *bias_out,
                     int32_t *bias_in) {
  for (int ch = 0; ch < cp; ch++) {
    uint32_t sum = 0;
    for (int t = 0; t < taps; t++) sum += (uint32_t)w[(size_t)t * cp + ch];
    bias_out[ch] = bias && ch < c ? bias[ch] : 0;
    bias_in[ch] = (int32_t)((uint32_t)bias_out[ch] - (uint32_t)in_zp * sum);
  }
}

/* n bytes from src to dst, each XOR f. */
static inline void copy_flip(int8_t *dst, const int8_t *src, size_t n, uint8_t f) {
  if (n == 16) {
    /* one 16-byte move (inlined), not a memcpy call */
    uint64_t v[2];
    const uint64_t f8 = f * UINT64_C(0x0101010101010101);
    memcpy(v, src, 16);
    v[0] ^= f8, v[1] ^= f8;
    memcpy(dst, v, 16);
    return;
  }
  memcpy(dst, src, n);
  if (f)
    for (size_t i = 0; i < n; i++) dst[i] = (int8_t)(dst[i] ^ (int8_t)f);
}

/* One pixel's row, any window: taps in the padding get pad. */
static void im2col_pixel(const eb_conv_geom *g, const int8_t *x, size_t x_len, int8_t pad, uint8_t f, int b, int oy,
                         int ox, int8_t *row, size_t row_room) {
  const size_t run = (size_t)g->ic, seg = run * (size_t)g->kw;
  const int ix0 = ox * g->sw - g->pl;
  /* a window row inside the image is one contiguous copy: with few input channels (a stem's
   * 3) the per-tap copies were most of the layer's time */
  const int whole = g->dw == 1 && ix0 >= 0 && ix0 + g->kw <= g->iw;
  for (int ky = 0; ky < g->kh; ky++) {
    const int iy = oy * g->sh - g->pt + ky * g->dh;
    if (iy < 0 || iy >= g->ih) {
      memset(row, pad, seg);
      row += seg;
      continue;
    }
    if (whole) {
      const size_t off = (((size_t)b * g->ih + iy) * g->iw + ix0) * run;
      /* short window rows: a 16-byte copy whose excess lands in bytes written after it (never
       * past the buffer, row_room bytes from this pixel's row, nor the input) */
      copy_flip(row, x + off, seg <= 16 && (size_t)ky * seg + 16 <= row_room && off + 16 <= x_len ? 16 : seg, f);
      row += seg;
      continue;
    }
    for (int kx = 0; kx < g->kw; kx++, row += run) {
      const int ix = ix0 + kx * g->dw;
      if (ix < 0 || ix >= g->iw) memset(row, pad, run);
      else copy_flip(row, x + (((size_t)b * g->ih + iy) * g->iw + ix) * run, run, f);
    }
  }
}

void eb_q8_im2col(const eb_conv_geom *geom, const int8_t *x, int32_t x_zp, size_t p0, size_t p1, int8_t *buf,
                  size_t stride, int flip) {
  /* a local copy: the byte stores may alias *geom as far as the compiler knows, so it reloaded
   * every field after each copy */
  const eb_conv_geom gc = *geom, *g = &gc;
  const uint8_t f = flip ? 0x80 : 0;
  const int8_t pad = (int8_t)(x_zp ^ f);
  const size_t hw = (size_t)g->oh * g->ow, run = (size_t)g->ic, seg = run * (size_t)g->kw;
  const size_t in_row = (size_t)g->iw * run, last_row = (size_t)(g->kh - 1) * g->dh * in_row;
  const size_t x_len = (size_t)g->n * g->ih * in_row, buf_len = (p1 - p0) * stride;
  /* output columns whose windows lie inside the input along x: [oxa, oxb) */
  const int oxa = (g->pl + g->sw - 1) / g->sw, last = g->iw - 1 - (g->kw - 1) * g->dw + g->pl;
  const int oxb = last < 0 ? 0 : last / g->sw + 1 < g->ow ? last / g->sw + 1 : g->ow;
  /* the pixel's (b, oy, ox) by counting, not dividing */
  int b = (int)(p0 / hw), oy = (int)(p0 % hw / g->ow), ox = (int)(p0 % g->ow);
  for (size_t p = p0; p < p1;) {
    int8_t *row = buf + (p - p0) * stride;
    const int iy0 = oy * g->sh - g->pt;
    size_t n = 1;
    if (seg <= 16 && g->dw == 1 && ox >= oxa && ox < oxb && iy0 >= 0 && iy0 + (g->kh - 1) * g->dh < g->ih) {
      /* a run of whole windows along this output row (a stem's pixels, nearly all): each window
       * row one 16-byte copy, no bounds to test but the buffer's and the input's ends */
      n = (size_t)(oxb - ox) < p1 - p ? (size_t)(oxb - ox) : p1 - p;
      size_t src = (((size_t)b * g->ih + iy0) * g->iw + (size_t)(ox * g->sw - g->pl)) * run;
      for (size_t j = 0; j < n; j++, row += stride, src += (size_t)g->sw * run) {
        const int room = (size_t)(row - buf) + (g->kh - 1) * seg + 16 <= buf_len && src + last_row + 16 <= x_len;
        const size_t len = room ? 16 : seg;
        for (int ky = 0; ky < g->kh; ky++) copy_flip(row + ky * seg, x + src + (size_t)ky * g->dh * in_row, len, f);
      }
    } else {
      im2col_pixel(g, x, x_len, pad, f, b, oy, ox, row, buf_len - (size_t)(row - buf));
    }
    p += n;
    ox += (int)n;
    if (ox == g->ow) {
      ox = 0;
      if (++oy == g->oh) oy = 0, b++;
    }
  }
}

/* ---- run-time pick ------------------------------------------------------------------ */

static const eb_q8_kernels ALL[] = {
    {"q8-portable", EB_Q8_LAYOUT_K16, 0, 0, eb_q8_gemm_portable, eb_q8_dw_rows_portable, eb_q8_add_portable,
     eb_ref_quantize_i8, NULL},
#if defined(EB_HAVE_X86_KERNELS)
    {"q8-avx512vnni", EB_Q8_LAYOUT_VNNI, 2, 1, eb_q8_gemm_avx512vnni, eb_q8_dw_rows_avx512, eb_q8_add_avx512,
     eb_q8_quantize_avx512, eb_q8_conv_avx512vnni},
#endif
#if defined(EB_HAVE_NEON_KERNELS)
    /* not yet timed against XNNPACK on a board: exact int8 on ARM when EDGEBNN_Q8 asks */
    {"q8-neon", EB_Q8_LAYOUT_K2, 1, 0, eb_q8_gemm_neon, eb_q8_dw_rows_neon, eb_q8_add_neon,
#if defined(__aarch64__)
     eb_q8_quantize_neon, NULL},
#else
     eb_ref_quantize_i8, NULL},
#endif
#endif
};
#define N_ALL ((int)(sizeof ALL / sizeof ALL[0]))

/* Each variant needs more than the one before it, so what a CPU runs is a prefix of ALL. */
static int cpu_has(const eb_q8_kernels *k) {
#if defined(EB_HAVE_NEON_KERNELS)
  if (k->isa == 1) {
#if defined(__aarch64__)
    return 1; /* baseline */
#elif defined(__arm__) && defined(__linux__)
    /* q8_neon.c is built with -mfpu=neon-vfpv4 (every Pi from the 2 on) */
    const unsigned long hw = getauxval(AT_HWCAP);
    return (hw & HWCAP_NEON) && (hw & HWCAP_VFPv4);
#else
    return 0;
#endif
  }
#endif
#if defined(EB_HAVE_X86_KERNELS)
  if (k->isa == 2)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
#endif
  return k->isa == 0;
}

const eb_q8_kernels *eb_q8_list(int *count) {
  int n = 0;
  while (n < N_ALL && cpu_has(&ALL[n])) n++;
  *count = n;
  return ALL;
}

const eb_q8_kernels *eb_q8_best(void) {
  int n;
  const eb_q8_kernels *ks = eb_q8_list(&n);
  const char *force = getenv("EDGEBNN_Q8");
  if (force && !strcmp(force, "portable")) return &ks[0];
  for (int i = 0; force && i < n; i++)
    if (!strcmp(force, ks[i].name)) return &ks[i];
  return &ks[n - 1];
}
