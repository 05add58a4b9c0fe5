/* C API tests: loading, the malformed corpus, every truncation, random mutations,
 * run-time argument errors, the timing hook and two sessions in two threads.
 * Built with ASan+UBSan in CI, so "no crash" is checked, not hoped for. */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgebnn.h"

#include "check.h"

static unsigned char *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  rewind(f);
  unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
  *size = fread(buf, 1, (size_t)n, f);
  fclose(f);
  return buf;
}

/* Load and, when the file is valid, run once on zeros: nothing may crash. */
static eb_status load_and_run(const unsigned char *data, size_t size, eb_error *err) {
  eb_model *m = NULL;
  eb_status st = eb_model_load_buffer(data, size, 1, &m, err);
  if (st != EB_OK) return st;
  eb_session *s = NULL;
  if (eb_model_arena_bytes(m) < ((size_t)64 << 20) && eb_session_create(m, NULL, &s, err) == EB_OK) {
    for (int i = 0; i < eb_model_num_inputs(m); i++) {
      eb_tensor_info info;
      eb_model_input_info(m, i, &info);
      void *z = calloc(1, info.bytes);
      eb_session_set_input(s, i, z, info.bytes, err);
      free(z);
    }
    eb_session_run(s, err);
    eb_session_free(s);
  }
  eb_model_free(m);
  return EB_OK;
}

static void test_corpus(void) {
  DIR *d = opendir(EDGEBNN_CORPUS_DIR);
  CHECK(d != NULL, "corpus dir %s missing", EDGEBNN_CORPUS_DIR);
  if (!d) return;
  struct dirent *e;
  int n_bad = 0;
  while ((e = readdir(d))) {
    if (!strstr(e->d_name, ".ebnn")) continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", EDGEBNN_CORPUS_DIR, e->d_name);
    eb_model *m = NULL;
    eb_error err = {0};
    eb_status st = eb_model_load_file(path, &m, &err);
    if (!strncmp(e->d_name, "bad_", 4)) {
      n_bad++;
      CHECK(st != EB_OK && m == NULL, "%s loaded but is malformed", e->d_name);
      CHECK(strlen(err.message) > 10 && !strchr(err.message, '\n'), "%s: message '%s' is not one clear line",
            e->d_name, err.message);
    } else {
      CHECK(st == EB_OK, "%s: %s", e->d_name, err.message);
    }
    eb_model_free(m);
  }
  closedir(d);
  CHECK(n_bad >= 20, "only %d malformed files in the corpus", n_bad);
}

static void test_truncations_and_mutations(const unsigned char *good, size_t size) {
  eb_error err;
  for (size_t n = 0; n < size; n++) CHECK(load_and_run(good, n, &err) != EB_OK, "truncation to %zu bytes loaded", n);
  unsigned char *buf = malloc(size);
  unsigned seed = 12345;
  int loaded = 0;
  for (int trial = 0; trial < 3000; trial++) {
    memcpy(buf, good, size);
    int flips = 1 + trial % 4;
    for (int f = 0; f < flips; f++) {
      seed = seed * 1103515245u + 12345u;
      size_t pos = (seed >> 8) % size;
      seed = seed * 1103515245u + 12345u;
      buf[pos] = (unsigned char)(seed >> 16);
    }
    if (load_and_run(buf, size, &err) == EB_OK) loaded++;
  }
  free(buf);
  printf("mutations: 3000 tried, %d still valid and ran\n", loaded);
}

static void test_run_errors(const unsigned char *good, size_t size) {
  eb_model *m = NULL;
  eb_session *s = NULL;
  eb_error err = {0};
  /* deliberately misaligned buffer without copy: the loader copies it itself */
  unsigned char *shifted = malloc(size + 1);
  memcpy(shifted + 1, good, size);
  CHECK(eb_model_load_buffer(shifted + 1, size, 0, &m, &err) == EB_OK, "misaligned buffer: %s", err.message);
  free(shifted);
  if (!m) return;
  CHECK(eb_model_num_inputs(m) == 1 && eb_model_num_outputs(m) == 1, "io counts");
  CHECK(eb_model_metadata(m, "producer") && !strcmp(eb_model_metadata(m, "producer"), "corpus"), "metadata");
  CHECK(eb_model_metadata(m, "nope") == NULL, "missing metadata key");
  eb_session_options opt;
  eb_session_options_init(&opt);
  opt.threads = 0;
  CHECK(eb_session_create(m, &opt, &s, &err) == EB_ERR_ARG, "threads=0 accepted");
  CHECK(eb_session_create(m, NULL, &s, &err) == EB_OK, "session: %s", err.message);
  float x[1 * 6 * 6 * 3];
  CHECK(eb_session_set_input(s, 0, x, sizeof x - 4, &err) == EB_ERR_SHAPE, "short input accepted");
  CHECK(strstr(err.message, "'x'") != NULL, "message names the input: %s", err.message);
  CHECK(eb_session_set_input(s, 3, x, sizeof x, &err) == EB_ERR_ARG, "bad index accepted");
  eb_tensor_info info;
  CHECK(eb_model_output_info(m, 5, &info) == EB_ERR_ARG, "bad output index");
  eb_session_free(s);
  eb_model_free(m);
}

typedef struct {
  const eb_model *m;
  float out[144];
  int ops_timed;
} worker;

static void count_op(void *user, int op, uint64_t ns) {
  (void)op;
  (void)ns;
  ((worker *)user)->ops_timed++;
}

static void *run_worker(void *arg) {
  worker *w = arg;
  eb_session_options opt;
  eb_session_options_init(&opt);
  opt.timer = count_op;
  opt.timer_user = w;
  eb_session *s = NULL;
  eb_error err;
  if (eb_session_create(w->m, &opt, &s, &err) != EB_OK) return NULL;
  float x[1 * 6 * 6 * 3];
  for (int i = 0; i < 108; i++) x[i] = sinf((float)i * 0.37f);
  for (int rep = 0; rep < 200; rep++) {
    eb_session_set_input(s, 0, x, sizeof x, &err);
    eb_session_run(s, &err);
  }
  eb_session_get_output(s, 0, w->out, sizeof w->out, &err);
  eb_session_free(s);
  return NULL;
}

static void test_two_threads(const unsigned char *good, size_t size) {
  eb_model *m = NULL;
  eb_error err;
  CHECK(eb_model_load_buffer(good, size, 1, &m, &err) == EB_OK, "load: %s", err.message);
  if (!m) return;
  worker a = {m, {0}, 0}, b = {m, {0}, 0}, ref = {m, {0}, 0};
  run_worker(&ref);
  pthread_t ta, tb;
  pthread_create(&ta, NULL, run_worker, &a);
  pthread_create(&tb, NULL, run_worker, &b);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  CHECK(!memcmp(a.out, ref.out, sizeof a.out) && !memcmp(b.out, ref.out, sizeof b.out),
        "two concurrent sessions disagree with a lone one");
  CHECK(a.ops_timed == 200 * eb_model_num_ops(m), "timer saw %d op runs", a.ops_timed);
  float sum = 0;
  for (int i = 0; i < 144; i++) sum += ref.out[i];
  CHECK(fabsf(sum - 1.0f) < 1e-4f, "softmax output sums to %f", sum);
  eb_model_free(m);
}

int main(void) {
  size_t size = 0;
  unsigned char *good = read_file(EDGEBNN_CORPUS_DIR "/good_small.ebnn", &size);
  CHECK(good != NULL, "good_small.ebnn missing");
  if (!good) return 1;
  printf("edgebnn %s\n", eb_version());
  test_corpus();
  test_run_errors(good, size);
  test_two_threads(good, size);
  test_truncations_and_mutations(good, size);
  free(good);
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
