/*
 * edgebnn-bench: time one .ebnn model with the edgebnn C API and print the numbers as JSON.
 *
 * It is what `edgebnn profile --host` copies to a board (no Python needed there), and the
 * example of embedding the runtime in an app: it uses nothing but edgebnn.h and libc.
 *
 *   edgebnn-bench model.ebnn --threads 4 --runs 50 --warmup 5
 *   edgebnn-bench model.ebnn --energy-uj /sys/class/powercap/intel-rapl:0/energy_uj
 *   edgebnn-bench --arch        prints the architecture this binary was built for
 *
 * Output (one JSON object on stdout; errors are one line on stderr and exit status 1):
 *   init_ms      load + session creation;  first_ms  the first run (cold caches, page faults)
 *   runs_ms      every timed run after the warm-up, in order
 *   ops          per-op mean nanoseconds from a second session with the per-op timer, so the
 *                timed runs above carry no timing-hook cost
 *   *_rss_kib    peak resident set (getrusage) before loading and after everything
 *   timed_unix_ms  wall-clock start and end of the timed runs (ms since the epoch), to match
 *                samples of a power sensor logged beside the bench
 *   energy       for each --energy-uj counter (microjoules, e.g. RAPL or hwmon energy*_input):
 *                its value before the first and after the last timed run
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "edgebnn.h"

#if defined(__aarch64__)
#define BENCH_ARCH "aarch64"
#elif defined(__arm__)
#define BENCH_ARCH "armv7"
#elif defined(__x86_64__)
#define BENCH_ARCH "x86_64"
#elif defined(__riscv) && __riscv_xlen == 64
#define BENCH_ARCH "riscv64"
#else
#define BENCH_ARCH "unknown"
#endif

#define MAX_COUNTERS 8

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Wall-clock time, so samples a power logger takes beside the bench can be matched to the timed runs. */
static double unix_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long peak_rss_kib(void) {
  struct rusage ru;
  return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

static int die(const char *what, const char *detail) {
  fprintf(stderr, "edgebnn-bench: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  return 1;
}

static void json_string(const char *s) {
  putchar('"');
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

/* A counter read as text: -1 when it cannot be read (no permission: RAPL is root-only on
 * recent kernels), which the caller reports as null rather than failing the run. */
static long long read_counter(const char *path) {
  FILE *f = fopen(path, "r");
  long long v = -1;
  if (!f) return -1;
  if (fscanf(f, "%lld", &v) != 1) v = -1;
  fclose(f);
  return v;
}

static void op_timer(void *user, int index, uint64_t ns) { ((uint64_t *)user)[index] += ns; }

/* Deterministic inputs: the timings must not depend on the data, but NaNs or denormals from
 * uninitialised memory could slow float kernels, so fill with small well-formed values. */
static int fill_inputs(eb_session *s, const eb_model *m, eb_error *err) {
  uint32_t state = 12345u;
  for (int i = 0; i < eb_model_num_inputs(m); i++) {
    eb_tensor_info info;
    eb_model_input_info(m, i, &info);
    unsigned char *buf = malloc(info.bytes ? info.bytes : 1);
    if (!buf) return EB_ERR_NOMEM;
    if (info.dtype == EB_F32 || info.dtype == EB_I32) {
      for (size_t k = 0; k + 4 <= info.bytes; k += 4) {
        state = state * 1664525u + 1013904223u;
        float f = (float)((state >> 8) & 0xffff) / 32768.0f - 1.0f;
        if (info.dtype == EB_I32) { int32_t v = (int32_t)(f * 100); memcpy(buf + k, &v, 4); }
        else memcpy(buf + k, &f, 4);
      }
    } else {
      for (size_t k = 0; k < info.bytes; k++) { state = state * 1664525u + 1013904223u; buf[k] = (unsigned char)(state >> 24); }
    }
    eb_status st = eb_session_set_input(s, i, buf, info.bytes, err);
    free(buf);
    if (st != EB_OK) return st;
  }
  return EB_OK;
}

static int parse_int(const char *s, int lo, const char *flag) {
  char *end;
  long v = strtol(s ? s : "", &end, 10);
  if (!s || *end || v < lo || v > 1000000) {
    fprintf(stderr, "edgebnn-bench: %s needs an integer >= %d, got '%s'\n", flag, lo, s ? s : "");
    exit(1);
  }
  return (int)v;
}

int main(int argc, char **argv) {
  const char *model_path = NULL, *counters[MAX_COUNTERS];
  int threads = 1, runs = 20, warmup = 3, ncounters = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--arch")) { puts(BENCH_ARCH); return 0; }
    if (!strcmp(a, "--version")) { printf("edgebnn-bench %s %s\n", eb_version(), BENCH_ARCH); return 0; }
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      puts("usage: edgebnn-bench MODEL [--threads N] [--runs N] [--warmup N] [--energy-uj FILE]...\n"
           "       edgebnn-bench --arch | --version\n"
           "Times MODEL with the edgebnn runtime and prints JSON (see the comment atop edgebnn_bench.c).");
      return 0;
    }
    if (!strcmp(a, "--threads")) threads = parse_int(i + 1 < argc ? argv[++i] : NULL, 1, a);
    else if (!strcmp(a, "--runs")) runs = parse_int(i + 1 < argc ? argv[++i] : NULL, 1, a);
    else if (!strcmp(a, "--warmup")) warmup = parse_int(i + 1 < argc ? argv[++i] : NULL, 0, a);
    else if (!strcmp(a, "--energy-uj")) {
      if (i + 1 >= argc) return die("--energy-uj needs a file", NULL);
      if (ncounters == MAX_COUNTERS) return die("too many --energy-uj counters", "at most 8");
      counters[ncounters++] = argv[++i];
    } else if (a[0] == '-') return die("unknown option", a);
    else if (model_path) return die("more than one model given", a);
    else model_path = a;
  }
  if (!model_path) return die("no model given", "usage: edgebnn-bench MODEL [--threads N] [--runs N]");

  struct stat st;
  if (stat(model_path, &st) != 0) return die(model_path, strerror(errno));
  long rss0 = peak_rss_kib();
  eb_error err;
  eb_model *m = NULL;
  eb_session *s = NULL, *ts = NULL;
  eb_session_options opt;
  eb_session_options_init(&opt);
  opt.threads = threads;

  double t0 = now_ms();
  if (eb_model_load_file(model_path, &m, &err) != EB_OK) return die("cannot load model", err.message);
  if (eb_session_create(m, &opt, &s, &err) != EB_OK) return die("cannot create session", err.message);
  double init_ms = now_ms() - t0;
  if (fill_inputs(s, m, &err) != EB_OK) return die("cannot set input", err.message);

  t0 = now_ms();
  if (eb_session_run(s, &err) != EB_OK) return die("run failed", err.message);
  double first_ms = now_ms() - t0;
  for (int i = 0; i < warmup; i++)
    if (eb_session_run(s, &err) != EB_OK) return die("run failed", err.message);

  double *times = malloc(sizeof(double) * (size_t)runs);
  long long e0[MAX_COUNTERS], e1[MAX_COUNTERS];
  if (!times) return die("out of memory", NULL);
  for (int c = 0; c < ncounters; c++) e0[c] = read_counter(counters[c]);
  double timed0 = now_ms(), unix0 = unix_ms();
  for (int i = 0; i < runs; i++) {
    t0 = now_ms();
    if (eb_session_run(s, &err) != EB_OK) return die("run failed", err.message);
    times[i] = now_ms() - t0;
  }
  double timed_ms = now_ms() - timed0, unix1 = unix_ms();
  for (int c = 0; c < ncounters; c++) e1[c] = read_counter(counters[c]);

  /* Per-op times come from a separate session so the timed runs above stay hook-free. */
  int nops = eb_model_num_ops(m);
  uint64_t *op_ns = calloc((size_t)(nops > 0 ? nops : 1), sizeof(uint64_t));
  if (!op_ns) return die("out of memory", NULL);
  opt.timer = op_timer;
  opt.timer_user = op_ns;
  if (eb_session_create(m, &opt, &ts, &err) != EB_OK) return die("cannot create session", err.message);
  if (fill_inputs(ts, m, &err) != EB_OK) return die("cannot set input", err.message);
  if (eb_session_run(ts, &err) != EB_OK) return die("run failed", err.message);
  memset(op_ns, 0, sizeof(uint64_t) * (size_t)(nops > 0 ? nops : 1));
  for (int i = 0; i < runs; i++)
    if (eb_session_run(ts, &err) != EB_OK) return die("run failed", err.message);
  long rss1 = peak_rss_kib();

  printf("{\"bench\": \"edgebnn-bench\", \"version\": ");
  json_string(eb_version());
  printf(", \"arch\": \"%s\", \"model\": ", BENCH_ARCH);
  json_string(model_path);
  printf(", \"file_bytes\": %lld, \"weight_bytes\": %zu, \"arena_bytes\": %zu",
         (long long)st.st_size, eb_model_weight_bytes(m), eb_model_arena_bytes(m));
  printf(", \"threads\": %d, \"runs\": %d, \"warmup\": %d", threads, runs, warmup);
  printf(", \"timed_unix_ms\": [%.3f, %.3f]", unix0, unix1);
  printf(", \"init_ms\": %.6f, \"first_ms\": %.6f, \"timed_ms\": %.6f, \"runs_ms\": [", init_ms, first_ms, timed_ms);
  for (int i = 0; i < runs; i++) printf("%s%.6f", i ? ", " : "", times[i]);
  printf("], \"peak_rss_before_kib\": %ld, \"peak_rss_after_kib\": %ld, \"ops\": [", rss0, rss1);
  for (int k = 0; k < nops; k++) {
    eb_op_info info;
    eb_model_op_info(m, k, &info);
    printf("%s{\"name\": ", k ? ", " : "");
    json_string(info.name);
    printf(", \"type\": ");
    json_string(info.type);
    printf(", \"backend\": ");
    json_string(info.backend);
    printf(", \"mean_ns\": %.1f}", (double)op_ns[k] / runs);
  }
  printf("], \"energy\": [");
  for (int c = 0; c < ncounters; c++) {
    printf("%s{\"file\": ", c ? ", " : "");
    json_string(counters[c]);
    if (e0[c] < 0 || e1[c] < 0) printf(", \"before_uj\": null, \"after_uj\": null}");
    else printf(", \"before_uj\": %lld, \"after_uj\": %lld}", e0[c], e1[c]);
  }
  printf("]}\n");

  free(op_ns);
  free(times);
  eb_session_free(ts);
  eb_session_free(s);
  eb_model_free(m);
  return 0;
}
