/* Whole int8 networks on every q8 variant this CPU runs (EDGEBNN_Q8=<name>) against the
 * reference kernels (EDGEBNN_KERNELS=ref), byte for byte: the corpus's good_int8.ebnn (a
 * small MobileNet-style network, tests/fuzz/make_corpus.py) and any .ebnn files listed in
 * EDGEBNN_Q8_MODELS (colon-separated; e.g. converted TFLite models, run under qemu for ARM).
 * Every conv/depthwise/FC/ADD op of the corpus model must report the variant as its backend. */
#include <stdlib.h>
#include <string.h>

#include "edgebnn.h"
#include "q8/q8.h"

#include "check.h"

static uint32_t rng_state = 12345u;
static uint32_t rnd(void) {
  rng_state = rng_state * 1664525u + 1013904223u;
  return rng_state >> 8;
}

/* Inputs: floats in [-3, 3], or random codes. */
static void fill_input(const eb_tensor_info *info, void *data) {
  if (info->dtype == EB_F32) {
    float *f = data;
    for (size_t i = 0; i < info->bytes / sizeof(float); i++) f[i] = (float)(rnd() % 6001) / 1000.0f - 3.0f;
  } else {
    unsigned char *b = data;
    for (size_t i = 0; i < info->bytes; i++) b[i] = (unsigned char)rnd();
  }
}

typedef struct {
  int n_in, n_out;
  void *in[8];
  unsigned char *out[8];
  size_t out_bytes[8];
} io_t;

/* Runs the model under the environment set by the caller; outputs into io (allocated on the
 * first call). Returns the number of q8-capable ops whose backend is not want (NULL: none checked). */
static int run(const char *path, io_t *io, const char *want, int *ran) {
  eb_error err;
  eb_model *m = NULL;
  eb_session *s = NULL;
  *ran = 0;
  if (eb_model_load_file(path, &m, &err) != EB_OK) {
    CHECK(0, "%s: %s", path, err.message);
    return 0;
  }
  int wrong = 0;
  for (int i = 0; want && i < eb_model_num_ops(m); i++) {
    eb_op_info op;
    eb_model_op_info(m, i, &op);
    const int q8_op = !strcmp(op.type, "CONV2D") || !strcmp(op.type, "DEPTHWISE_CONV2D") ||
                      !strcmp(op.type, "FULLY_CONNECTED") || !strcmp(op.type, "ADD");
    if (q8_op && strcmp(op.backend, want)) {
      printf("  op %s (%s) runs on %s, not %s\n", op.name, op.type, op.backend, want);
      wrong++;
    }
  }
  if (eb_session_create(m, NULL, &s, &err) != EB_OK) {
    CHECK(0, "%s: session: %s", path, err.message);
    eb_model_free(m);
    return wrong;
  }
  if (!io->n_in) {
    io->n_in = eb_model_num_inputs(m), io->n_out = eb_model_num_outputs(m);
    for (int i = 0; i < io->n_in && i < 8; i++) {
      eb_tensor_info info;
      eb_model_input_info(m, i, &info);
      io->in[i] = malloc(info.bytes);
      fill_input(&info, io->in[i]);
    }
    for (int i = 0; i < io->n_out && i < 8; i++) {
      eb_tensor_info info;
      eb_model_output_info(m, i, &info);
      io->out_bytes[i] = info.bytes;
    }
  }
  for (int i = 0; i < io->n_in && i < 8; i++) {
    eb_tensor_info info;
    eb_model_input_info(m, i, &info);
    CHECK(eb_session_set_input(s, i, io->in[i], info.bytes, &err) == EB_OK, "%s: input: %s", path, err.message);
  }
  if (eb_session_run(s, &err) == EB_OK) {
    for (int i = 0; i < io->n_out && i < 8; i++) {
      if (!io->out[i]) io->out[i] = malloc(io->out_bytes[i]);
      CHECK(eb_session_get_output(s, i, io->out[i], io->out_bytes[i], &err) == EB_OK, "%s: output", path);
    }
    *ran = 1;
  } else {
    CHECK(0, "%s: run: %s", path, err.message);
  }
  eb_session_free(s);
  eb_model_free(m);
  return wrong;
}

static void test_model(const char *path, int check_backends) {
  io_t ref = {0};
  int ran;
  printf("%s\n", path);
  setenv("EDGEBNN_KERNELS", "ref", 1);
  setenv("EDGEBNN_XNNPACK", "0", 1);
  run(path, &ref, NULL, &ran);
  unsetenv("EDGEBNN_KERNELS");
  unsetenv("EDGEBNN_XNNPACK");
  if (!ran) return;
  for (int i = 0; i < ref.n_out && i < 8; i++) { /* how spread the codes are (not all clamped) */
    int seen[256] = {0}, distinct = 0;
    for (size_t j = 0; j < ref.out_bytes[i]; j++) distinct += !seen[ref.out[i][j]]++;
    printf("  ref: output %d has %d distinct byte values\n", i, distinct);
  }
  int nk;
  const eb_q8_kernels *ks = eb_q8_list(&nk);
  for (int v = 0; v < nk; v++) {
    io_t got = ref;
    memset(got.out, 0, sizeof got.out);
    setenv("EDGEBNN_Q8", ks[v].name, 1);
    const int wrong = run(path, &got, ks[v].name, &ran);
    unsetenv("EDGEBNN_Q8");
    if (check_backends) CHECK(wrong == 0, "%s: %d int8 ops not on %s", path, wrong, ks[v].name);
    for (int i = 0; ran && i < ref.n_out && i < 8; i++) {
      size_t d = 0;
      while (d < ref.out_bytes[i] && got.out[i][d] == ref.out[i][d]) d++;
      CHECK(d == ref.out_bytes[i], "%s on %s: output %d differs from ref at byte %zu of %zu", path, ks[v].name, i, d,
            ref.out_bytes[i]);
      printf("  %s: output %d (%zu bytes) %s\n", ks[v].name, i, ref.out_bytes[i],
             d == ref.out_bytes[i] ? "identical to ref" : "DIFFERS");
      free(got.out[i]);
    }
  }
  for (int i = 0; i < 8; i++) free(ref.in[i]), free(ref.out[i]);
}

int main(void) {
  test_model(EDGEBNN_CORPUS_DIR "/good_int8.ebnn", 1);
  const char *extra = getenv("EDGEBNN_Q8_MODELS");
  if (extra && *extra) {
    char *list = strdup(extra);
    for (char *save = NULL, *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save)) test_model(p, 0);
    free(list);
  }
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures != 0;
}
