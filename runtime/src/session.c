/* Sessions: one arena allocated at creation, nothing allocated per inference.
 * Inputs and outputs cross the boundary in the layout the model declares (NCHW for
 * models converted from PyTorch); inside, everything is NHWC. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bin_ops.h"
#include "internal.h"
#include "q8_ops.h"
#include "xnn.h"

void eb_session_options_init(eb_session_options *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->threads = 1;
}

eb_status eb_session_create(const eb_model *m, const eb_session_options *opt, eb_session **out, eb_error *err) {
  if (!m || !out) return eb_fail(err, EB_ERR_ARG, "eb_session_create: NULL argument");
  *out = NULL;
  eb_session *s = calloc(1, sizeof *s);
  if (!s) return eb_fail(err, EB_ERR_NOMEM, "out of memory");
  s->model = m;
  eb_session_options_init(&s->options);
  if (opt) s->options = *opt;
  if (s->options.threads < 1) {
    free(s);
    return eb_fail(err, EB_ERR_ARG, "threads must be >= 1, got %d", opt->threads);
  }
  size_t bytes = m->arena_bytes ? m->arena_bytes : EB_ARENA_ALIGN;
  s->arena = aligned_alloc(EB_ARENA_ALIGN, (bytes + EB_ARENA_ALIGN - 1) / EB_ARENA_ALIGN * EB_ARENA_ALIGN);
  s->ptr = calloc((size_t)m->n_tensors + 1, sizeof *s->ptr);
  s->xnn_op = calloc((size_t)m->n_nodes + 1, sizeof *s->xnn_op);
  s->packed = calloc((size_t)m->n_nodes + 1, sizeof *s->packed);
  s->q8op = calloc((size_t)m->n_nodes + 1, sizeof *s->q8op);
  size_t zero_floats = 1;
  for (int k = 0; k < m->n_nodes; k++)
    if (m->nodes[k].backend == EB_BACKEND_HETCONV_FUSED) {
      size_t c = (size_t)m->tensors[m->nodes[k].in[0]].dims[3];
      if (c > zero_floats) zero_floats = c;
    }
  s->zero_row = calloc(zero_floats, sizeof *s->zero_row);
  if (!s->arena || !s->ptr || !s->xnn_op || !s->packed || !s->q8op || !s->zero_row) {
    eb_session_free(s);
    return eb_fail(err, EB_ERR_NOMEM, "out of memory for a %zu-byte arena", bytes);
  }
  if (s->options.threads > 1) {
    s->pool = eb_pool_create(s->options.threads);
    /* without pthreadpool in the build the pool is NULL by design, not an error */
  }
  eb_status st = eb_bin_prepack(s, err);
  if (st != EB_OK) {
    eb_session_free(s);
    return st;
  }
  /* zeroed so that an output read before any run is defined, not stale heap */
  memset(s->arena, 0, bytes);
  for (int i = 0; i < m->n_tensors; i++) {
    const eb_tensor *t = &m->tensors[i];
    s->ptr[i] = t->data ? (void *)t->data : s->arena + t->arena_offset;
  }
  for (int k = 0; k < m->n_nodes; k++) {
    st = eb_op_prepare(s, &m->nodes[k], err);
    if (st) {
      eb_session_free(s);
      return st;
    }
  }
  *out = s;
  return EB_OK;
}

void eb_session_free(eb_session *s) {
  if (!s) return;
  for (int k = 0; s->xnn_op && k < s->model->n_nodes; k++) eb_xnn_delete(s->xnn_op[k]);
  for (int k = 0; s->packed && k < s->model->n_nodes; k++) free(s->packed[k]);
  for (int k = 0; s->q8op && k < s->model->n_nodes; k++) eb_q8_delete(s->q8op[k]);
  free(s->q8op);
  free(s->xnn_op);
  free(s->packed);
  free(s->zero_row);
  eb_pool_free(s->pool);
  eb_bin_prepack_free(s);
  free(s->arena);
  free(s->ptr);
  free(s);
}

/* NCHW <-> NHWC for one 4-D tensor of elem-byte elements. */
static void nchw_to_nhwc(const eb_tensor *t, const uint8_t *src, uint8_t *dst, size_t elem, int to_nhwc) {
  size_t n = (size_t)t->dims[0], h = (size_t)t->dims[1], w = (size_t)t->dims[2], c = (size_t)t->dims[3];
  for (size_t in = 0; in < n; in++)
    for (size_t ic = 0; ic < c; ic++)
      for (size_t ih = 0; ih < h; ih++)
        for (size_t iw = 0; iw < w; iw++) {
          size_t nchw = ((in * c + ic) * h + ih) * w + iw, nhwc = ((in * h + ih) * w + iw) * c + ic;
          if (to_nhwc) memcpy(dst + nhwc * elem, src + nchw * elem, elem);
          else memcpy(dst + nchw * elem, src + nhwc * elem, elem);
        }
}

eb_status eb_session_set_input(eb_session *s, int index, const void *data, size_t bytes, eb_error *err) {
  if (!s || !data) return eb_fail(err, EB_ERR_ARG, "eb_session_set_input: NULL argument");
  const eb_model *m = s->model;
  if (index < 0 || index >= m->n_inputs)
    return eb_fail(err, EB_ERR_ARG, "input index %d out of range (model has %d inputs)", index, m->n_inputs);
  const eb_tensor *t = &m->tensors[m->inputs[index]];
  if (bytes != t->nbytes)
    return eb_fail(err, EB_ERR_SHAPE, "input '%s' takes %zu bytes (%s, %zu elements), got %zu", t->name, t->nbytes,
                   eb_dtype_name(t->dtype), t->count, bytes);
  if (t->io_layout == EB_LAYOUT_NCHW) nchw_to_nhwc(t, data, s->ptr[m->inputs[index]], eb_dtype_size(t->dtype), 1);
  else memcpy(s->ptr[m->inputs[index]], data, bytes);
  return EB_OK;
}

eb_status eb_session_get_output(eb_session *s, int index, void *data, size_t bytes, eb_error *err) {
  if (!s || !data) return eb_fail(err, EB_ERR_ARG, "eb_session_get_output: NULL argument");
  const eb_model *m = s->model;
  if (index < 0 || index >= m->n_outputs)
    return eb_fail(err, EB_ERR_ARG, "output index %d out of range (model has %d outputs)", index, m->n_outputs);
  const eb_tensor *t = &m->tensors[m->outputs[index]];
  if (bytes != t->nbytes)
    return eb_fail(err, EB_ERR_SHAPE, "output '%s' has %zu bytes, buffer has %zu", t->name, t->nbytes, bytes);
  if (t->io_layout == EB_LAYOUT_NCHW) nchw_to_nhwc(t, s->ptr[m->outputs[index]], data, eb_dtype_size(t->dtype), 0);
  else memcpy(data, s->ptr[m->outputs[index]], bytes);
  return EB_OK;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  timespec_get(&ts, TIME_UTC);
#if defined(CLOCK_MONOTONIC)
  clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

eb_status eb_session_run(eb_session *s, eb_error *err) {
  if (!s) return eb_fail(err, EB_ERR_ARG, "eb_session_run: NULL session");
  const eb_model *m = s->model;
  eb_op_timer timer = s->options.timer;
  for (int k = 0; k < m->n_nodes; k++) {
    uint64_t t0 = timer ? now_ns() : 0;
    eb_op_run(s, &m->nodes[k]);
    if (timer) timer(s->options.timer_user, k, now_ns() - t0);
  }
  return EB_OK;
}
