/*
 * Binary kernel benchmark: the machine's peak xor-popcount throughput, and the
 * time and achieved fraction of that peak of every binary kernel variant on the
 * Bi-Real / ResNet-18 binary 3x3 conv layers, a 4096x4096 binary FC, and the
 * 1 vs 2 thread scaling of the best variant. Prints a markdown report.
 *
 * Convention: one xor+popcount of two 64-bit words is 128 binary operations
 * (64 xnor "multiplies" + 64 popcount "adds"), so a binary conv does
 * 2 * oh*ow*oc*kh*kw*ic binary ops, the usual BNN accounting (BOPs = 2 x MACs).
 *
 * Build and run: benchmarks/kernels/run.sh
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bin_ops.h"
#include "kernels.h"
#include "parallel.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__aarch64__) || (defined(__ARM_NEON) && defined(__arm__))
#include <arm_neon.h>
#endif

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Median of repeated runs: at least 5, more while under ~0.4 s, at most 101. */
typedef void (*bench_fn)(void *ctx);
static double median_time(bench_fn fn, void *ctx) {
  double t[101];
  int n = 0;
  fn(ctx); /* warm caches and pages */
  const double start = now_s();
  while (n < 101 && (n < 5 || now_s() - start < 0.4)) {
    const double t0 = now_s();
    fn(ctx);
    t[n++] = now_s() - t0;
  }
  qsort(t, (size_t)n, sizeof t[0], cmp_d);
  return t[n / 2];
}

/* ---- peak: independent xor+popcount+add chains on register data ------------------ */
/* The empty asm makes each operand opaque every iteration, so nothing is hoisted
 * out of the loop; 12 named chains (registers, not an array) hide the latency.
 * Each returns 64-bit words per second. */
#define PEAK_ITERS 4000000L
#define CH12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define CH8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

static volatile uint64_t sink;

#define SCALAR_PEAK_BODY                                                                   \
  const uint64_t w = 0x0123456789abcdefull;                                                \
  CH12(DECL)                                                                               \
  const double t0 = now_s();                                                               \
  for (long i = 0; i < PEAK_ITERS; i++) { CH12(STEP) }                                     \
  const double dt = now_s() - t0;                                                          \
  uint64_t s = 0;                                                                          \
  CH12(SUM)                                                                                \
  sink = s;                                                                                \
  return (double)PEAK_ITERS * 12 / dt;
#define DECL(j) uint64_t x##j = 0x9e3779b97f4a7c15ull * (j + 1), a##j = 0;
#define STEP(j) __asm__ volatile("" : "+r"(x##j)); a##j += (uint64_t)__builtin_popcountll(x##j ^ w);
#define SUM(j) s += a##j;
static double peak_scalar(void) { SCALAR_PEAK_BODY }
#if defined(__x86_64__)
__attribute__((target("popcnt"))) static double peak_popcnt(void) { SCALAR_PEAK_BODY }
#endif
#undef DECL
#undef STEP
#undef SUM

#if defined(__x86_64__)
/* The nibble-lookup ISAs count in bytes, as their kernels do: 31 words per byte
 * counter (31 * 8 < 256), then one vpsadbw folds them into 64-bit lanes. */
__attribute__((target("avx2"))) static inline __m256i pc256(__m256i b, __m256i v, __m256i lut, __m256i low) {
  return _mm256_add_epi8(_mm256_add_epi8(b, _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low))),
                         _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low)));
}

__attribute__((target("avx2"))) static double peak_avx2(void) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2,
                                       2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f), w = _mm256_set1_epi64x(0x0123456789abcdefll);
#define DECL(j) __m256i x##j = _mm256_set1_epi64x((long long)(0x9e3779b97f4a7c15ull * (j + 1))), b##j = _mm256_setzero_si256(), a##j = _mm256_setzero_si256();
#define STEP(j) __asm__ volatile("" : "+x"(x##j)); b##j = pc256(b##j, _mm256_xor_si256(x##j, w), lut, low);
#define FOLD(j) a##j = _mm256_add_epi64(a##j, _mm256_sad_epu8(b##j, _mm256_setzero_si256())); b##j = _mm256_setzero_si256();
#define SUM(j) _mm256_storeu_si256((__m256i *)l, a##j); s += l[0] + l[1] + l[2] + l[3];
  CH8(DECL)
  const long iters = PEAK_ITERS / 2 / 31;
  const double t0 = now_s();
  for (long i = 0; i < iters; i++) {
    for (int k = 0; k < 31; k++) { CH8(STEP) }
    CH8(FOLD)
  }
  const double dt = now_s() - t0;
  uint64_t l[4], s = 0;
  CH8(SUM)
  sink = s;
#undef DECL
#undef STEP
#undef FOLD
#undef SUM
  return (double)iters * 31 * 8 * 4 / dt;
}

/* vpternlogq forms the nibbles of x ^ w in one op (the high ones from pre-shifted operands) */
__attribute__((target("avx512f,avx512bw"))) static double peak_avx512bw(void) {
  const __m512i lut = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4));
  const __m512i low = _mm512_set1_epi8(0x0f), w = _mm512_set1_epi64(0x0123456789abcdefll);
  const __m512i wh = _mm512_srli_epi16(w, 4);
#define DECL(j) __m512i x##j = _mm512_set1_epi64((long long)(0x9e3779b97f4a7c15ull * (j + 1))), b##j = _mm512_setzero_si512(), a##j = _mm512_setzero_si512();
#define STEP(j)                                                                                                  \
  __asm__ volatile("" : "+v"(x##j));                                                                             \
  b##j = _mm512_add_epi8(_mm512_add_epi8(b##j, _mm512_shuffle_epi8(lut, _mm512_ternarylogic_epi64(x##j, w, low, 0x28))), \
                         _mm512_shuffle_epi8(lut, _mm512_ternarylogic_epi64(_mm512_srli_epi16(x##j, 4), wh, low, 0x28)));
#define FOLD(j) a##j = _mm512_add_epi64(a##j, _mm512_sad_epu8(b##j, _mm512_setzero_si512())); b##j = _mm512_setzero_si512();
#define SUM(j) s += (uint64_t)_mm512_reduce_add_epi64(a##j);
  CH8(DECL)
  const long iters = PEAK_ITERS / 4 / 31;
  const double t0 = now_s();
  for (long i = 0; i < iters; i++) {
    for (int k = 0; k < 31; k++) { CH8(STEP) }
    CH8(FOLD)
  }
  const double dt = now_s() - t0;
  uint64_t s = 0;
  CH8(SUM)
  sink = s;
#undef DECL
#undef STEP
#undef FOLD
#undef SUM
  return (double)iters * 31 * 8 * 8 / dt;
}

__attribute__((target("avx512f,avx512vpopcntdq"))) static double peak_avx512(void) {
  const __m512i w = _mm512_set1_epi64(0x0123456789abcdefll);
#define DECL(j) __m512i x##j = _mm512_set1_epi64((long long)(0x9e3779b97f4a7c15ull * (j + 1))), a##j = _mm512_setzero_si512();
#define STEP(j) __asm__ volatile("" : "+v"(x##j)); a##j = _mm512_add_epi64(a##j, _mm512_popcnt_epi64(_mm512_xor_si512(x##j, w)));
#define SUM(j) s += (uint64_t)_mm512_reduce_add_epi64(a##j);
  CH12(DECL)
  const long iters = PEAK_ITERS / 4;
  const double t0 = now_s();
  for (long i = 0; i < iters; i++) { CH12(STEP) }
  const double dt = now_s() - t0;
  uint64_t s = 0;
  CH12(SUM)
  sink = s;
#undef DECL
#undef STEP
#undef SUM
  return (double)iters * 12 * 8 / dt;
}
#endif

#if defined(__aarch64__) || (defined(__ARM_NEON) && defined(__arm__))
static double peak_neon(void) {
  const uint64x2_t w = vdupq_n_u64(0x0123456789abcdefull);
#define DECL(j) uint64x2_t x##j = vdupq_n_u64(0x9e3779b97f4a7c15ull * (j + 1)); uint16x8_t a##j = vdupq_n_u16(0);
#define STEP(j) __asm__ volatile("" : "+w"(x##j)); a##j = vpadalq_u8(a##j, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(x##j, w))));
#define SUM(j) { const uint64x2_t q = vpaddlq_u32(vpaddlq_u16(a##j)); s += vgetq_lane_u64(q, 0) + vgetq_lane_u64(q, 1); a##j = vdupq_n_u16(0); }
  CH8(DECL)
  const long iters = 4000; /* 4000 steps fit the 16-bit lanes; then fold and repeat */
  uint64_t s = 0;
  const long reps = PEAK_ITERS / iters;
  const double t0 = now_s();
  for (long r = 0; r < reps; r++) {
    for (long i = 0; i < iters; i++) { CH8(STEP) }
    CH8(SUM)
  }
  const double dt = now_s() - t0;
  sink = s;
#undef DECL
#undef STEP
#undef SUM
  return (double)reps * iters * 8 * 2 / dt;
}
#endif

static double peak_once(const char *isa) {
  if (!strcmp(isa, "scalar")) return peak_scalar();
#if defined(__x86_64__)
  if (!strcmp(isa, "popcnt")) return peak_popcnt();
  if (!strcmp(isa, "avx2")) return peak_avx2();
  if (!strcmp(isa, "avx512bw")) return peak_avx512bw();
  if (!strcmp(isa, "avx512")) return peak_avx512();
#endif
#if defined(__aarch64__) || (defined(__ARM_NEON) && defined(__arm__))
  if (!strcmp(isa, "neon")) return peak_neon();
#endif
  return 0;
}

/* Best of 5: a peak is what the core can do, so interference only lowers it. */
static double peak_words(const char *isa) {
  double best = 0;
  for (int i = 0; i < 5; i++) {
    const double v = peak_once(isa);
    if (v > best) best = v;
  }
  return best;
}

/* ---- layers -------------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd64(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 2685821657736338717ull;
}

/* Random BIT1 rows with zero padding bits. */
static uint64_t *random_bits(size_t rows, int c) {
  const size_t wpr = eb_words((size_t)c);
  uint64_t *w = aligned_alloc(64, (rows * wpr * 8 + 63) / 64 * 64);
  for (size_t r = 0; r < rows; r++)
    for (size_t k = 0; k < wpr; k++) {
      const int left = c - (int)k * 64;
      w[r * wpr + k] = rnd64() & (left >= 64 ? ~0ull : ((1ull << left) - 1));
    }
  return w;
}

typedef struct {
  const eb_bin_kernels *k;
  eb_pool *pool;
  eb_conv_geom g;
  const uint64_t *x, *w;
  const void *packed;
  int32_t *acc;
  int fc_n, fc_k, fc_o; /* fc_n > 0: FC */
  uint64_t *bits;       /* non-NULL: packed bits out through thr/dir, as between the layers of a network */
  const int32_t *thr, *dir;
} layer_ctx;

static void run_layer(void *p) {
  layer_ctx *c = p;
  const eb_bin_out o = {c->acc, c->bits, c->thr, c->dir, NULL, NULL, NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, 0, 0, NULL, NULL, 0, 0};
  if (c->fc_n) eb_bin_fc(c->pool, c->k, c->fc_n, c->fc_k, c->fc_o, c->x, c->w, c->packed, &o);
  else eb_bin_conv(c->pool, c->k, &c->g, 0, c->x, c->w, c->packed, &o);
}

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  int nk;
  const eb_bin_kernels *ks = eb_kernels_list(&nk);
  const eb_bin_kernels *best = &ks[nk - 1];
  double peak[16] = {0};

  printf("## Peak xor-popcount throughput (one thread, operands in registers, best of 5)\n\n");
  printf("Binary ops: one xor+popcount of two 64-bit words = 128 binary ops (BOPs = 2 x MACs).\n\n");
  printf("| ISA | Gword/s | binary GOPS |\n|---|---:|---:|\n");
  double machine_peak = 0;
  for (int i = 1; i < nk; i++) {
    peak[i] = peak_words(ks[i].name);
    if (peak[i] > machine_peak) machine_peak = peak[i];
    printf("| %s | %.2f | %.1f |\n", ks[i].name, peak[i] / 1e9, peak[i] * 128 / 1e9);
  }
  printf("\nMachine peak (best ISA): %.1f binary GOPS per core.\n\n", machine_peak * 128 / 1e9);

  /* Bi-Real / ResNet-18 binary 3x3 convs (batch 1, stride 1, pad 1), BinaryNet's two
   * (zoo binarynet_cnn on 28x28: 9 words per pixel, small maps, many border pixels)
   * and a 4096x4096 FC */
  static const int SHAPES[][3] = {{56, 64, 64}, {28, 128, 128}, {14, 256, 256}, {7, 512, 512}, {14, 32, 64}, {7, 64, 64}};
  enum { N_CONV = sizeof SHAPES / sizeof SHAPES[0], N_LAYERS = N_CONV + 1 };
  const int n_layers = N_LAYERS;
  double t_ref[N_LAYERS], t_var[N_LAYERS][16], t_thr[N_LAYERS], t_bref[N_LAYERS], t_bits[N_LAYERS][16];
  const char *names[N_LAYERS];
  char label[N_LAYERS][64];
  double bops[N_LAYERS];
  for (int L = 0; L < n_layers; L++) {
    layer_ctx c;
    memset(&c, 0, sizeof c);
    size_t nacc;
    int oc, taps, ic;
    if (L < N_CONV) {
      const int hw = SHAPES[L][0], ci = SHAPES[L][1], co = SHAPES[L][2];
      c.g = (eb_conv_geom){1, hw, hw, ci, hw, hw, co, 3, 3, 1, 1, 1, 1, 1, 1, 1};
      c.x = random_bits((size_t)hw * hw, ci);
      c.w = random_bits((size_t)co * 9, ci);
      nacc = (size_t)hw * hw * co;
      oc = co, taps = 9, ic = ci;
      bops[L] = 2.0 * hw * hw * co * 9.0 * ci;
      if (ci == co) snprintf(label[L], sizeof label[L], "conv3x3 %dx%dx%d", hw, hw, ci);
      else snprintf(label[L], sizeof label[L], "conv3x3 %dx%dx%d->%d", hw, hw, ci, co);
    } else {
      c.fc_n = 1, c.fc_k = 4096, c.fc_o = 4096;
      c.x = random_bits(1, 4096);
      c.w = random_bits(4096, 4096);
      nacc = 4096;
      oc = 4096, taps = 1, ic = 4096;
      bops[L] = 2.0 * 4096 * 4096;
      snprintf(label[L], sizeof label[L], "FC 4096x4096 (batch 1)");
    }
    names[L] = label[L];
    c.acc = malloc(nacc * 4);
    int32_t *ref = malloc(nacc * 4);
    void *packed = aligned_alloc(64, (eb_bpack_bytes(oc, taps, ic, 1) + 63) / 64 * 64);
    eb_bpack(oc, taps, ic, 1, c.w, packed);
    c.k = &ks[0];
    t_ref[L] = median_time(run_layer, &c);
    memcpy(ref, c.acc, nacc * 4);
    c.packed = packed;
    for (int i = 1; i < nk; i++) {
      c.k = &ks[i];
      memset(c.acc, 0, nacc * 4);
      t_var[L][i] = median_time(run_layer, &c);
      if (memcmp(c.acc, ref, nacc * 4)) {
        fprintf(stderr, "%s differs from ref on %s\n", ks[i].name, names[L]);
        return 1;
      }
    }
    /* the same layer with its output thresholded to packed bits in the kernel (zero
     * thresholds, +1 directions: sign of the accumulator, as a folded BN + sign) */
    const size_t nbits = nacc / (size_t)oc * eb_words((size_t)oc);
    uint64_t *bref = malloc(nbits * 8);
    int32_t *thr = calloc((size_t)oc, 4), *dir = malloc((size_t)oc * 4);
    for (int j = 0; j < oc; j++) dir[j] = 1;
    c.thr = thr, c.dir = dir;
    c.bits = malloc(nbits * 8);
    c.k = &ks[0];
    t_bref[L] = median_time(run_layer, &c);
    memcpy(bref, c.bits, nbits * 8);
    for (int i = 1; i < nk; i++) {
      c.k = &ks[i];
      memset(c.bits, 0, nbits * 8);
      t_bits[L][i] = median_time(run_layer, &c);
      if (memcmp(c.bits, bref, nbits * 8)) {
        fprintf(stderr, "%s (bits out) differs from ref on %s\n", ks[i].name, names[L]);
        return 1;
      }
    }
    free(c.bits);
    free(bref);
    free(thr);
    free(dir);
    c.bits = NULL;
    c.k = best;
    c.pool = eb_pool_create(2);
    t_thr[L] = eb_pool_threads(c.pool) == 2 ? median_time(run_layer, &c) : 0;
    if (t_thr[L] > 0 && memcmp(c.acc, ref, nacc * 4)) {
      fprintf(stderr, "2 threads differ from ref on %s\n", names[L]);
      return 1;
    }
    eb_pool_free(c.pool);
    free((void *)c.x);
    free((void *)c.w);
    free(c.acc);
    free(ref);
    free(packed);
  }

  printf("## Binary layers, int32 accumulator output, one thread (median time; %% of that ISA's peak / of the machine peak)\n\n");
  printf("| layer | binary GOP | ref ms |");
  for (int i = 1; i < nk; i++) printf(" %s ms |", ks[i].name);
  printf(" best vs ref | %s %% of machine peak |\n|---|---:|---:|", best->name);
  for (int i = 1; i < nk; i++) printf("---:|");
  printf("---:|---:|\n");
  for (int L = 0; L < n_layers; L++) {
    printf("| %s | %.3f | %.3f |", names[L], bops[L] / 1e9, t_ref[L] * 1e3);
    for (int i = 1; i < nk; i++)
      printf(" %.3f (%.0f%%) |", t_var[L][i] * 1e3, 100.0 * bops[L] / t_var[L][i] / (peak[i] * 128));
    printf(" %.1fx | %.0f%% |\n", t_ref[L] / t_var[L][nk - 1],
           100.0 * bops[L] / t_var[L][nk - 1] / (machine_peak * 128));
  }

  printf("\n## The same layers with a packed-bits output, one thread (median time; %% of that ISA's peak)\n\n");
  printf("The output stage (integer thresholds to packed bits, how a binary layer feeds the next one\n"
         "inside a network) runs in the kernel on the accumulator registers; ref accumulates\n"
         "to int32 and thresholds in a second pass.\n\n");
  printf("| layer | ref ms |");
  for (int i = 1; i < nk; i++) printf(" %s ms |", ks[i].name);
  printf(" best vs ref | %s %% of machine peak |\n|---|---:|", best->name);
  for (int i = 1; i < nk; i++) printf("---:|");
  printf("---:|---:|\n");
  for (int L = 0; L < n_layers; L++) {
    printf("| %s | %.3f |", names[L], t_bref[L] * 1e3);
    for (int i = 1; i < nk; i++)
      printf(" %.3f (%.0f%%) |", t_bits[L][i] * 1e3, 100.0 * bops[L] / t_bits[L][i] / (peak[i] * 128));
    printf(" %.1fx | %.0f%% |\n", t_bref[L] / t_bits[L][nk - 1],
           100.0 * bops[L] / t_bits[L][nk - 1] / (machine_peak * 128));
  }

  printf("\nThe scalar/popcnt peaks are a scalar-register loop; the compiler may vectorize parts of\n"
         "those kernels, so they can exceed 100%% of their row's peak. The last column is the one that counts.\n");
  printf("\n## Thread scaling, %s (median ms)\n\n", best->name);
  printf("| layer | 1 thread | 2 threads | speedup |\n|---|---:|---:|---:|\n");
  int slower = 0;
  for (int L = 0; L < n_layers; L++) {
    if (t_thr[L] > 0)
      printf("| %s | %.3f | %.3f | %.2fx |\n", names[L], t_var[L][nk - 1] * 1e3, t_thr[L] * 1e3,
             t_var[L][nk - 1] / t_thr[L]);
    else
      printf("| %s | %.3f | n/a (built without pthreadpool) | |\n", names[L], t_var[L][nk - 1] * 1e3);
    slower |= t_thr[L] > t_var[L][nk - 1];
  }
  if (slower)
    printf("\nWhere 2 threads are slower than 1, the second core was busy with other work (a shared\n"
           "machine): the worker waits for a scheduler time slice. Rerun on an idle machine.\n");
  return 0;
}
