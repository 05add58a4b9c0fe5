/* Sessions: one arena allocated at creation, nothing allocated per inference.
 * Inputs and outputs cross the boundary in the layout the model declares (NCHW for
 * models converted from PyTorch); inside, everything is NHWC. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "band.h"
#include "bin_ops.h"
#include "internal.h"
#include "q8_ops.h"
#include "xnn.h"

void eb_session_options_init(eb_session_options *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->threads = 1;
}

/* Number of a node's constant inputs that the session copied at creation (binary weights
 * repacked; float weights and bias packed by XNNPACK): those come first in its input list. */
static int copied_inputs(const eb_session *s, int k) {
  const eb_node *nd = &s->model->nodes[k];
  /* a conv run in bands (band.c): XNNPACK packed a copy per band */
  if (nd->skipped && nd->type == EB_OP_CONV2D && nd->backend == EB_BACKEND_XNNPACK) return 3;
  if (s->xnn_op[k] && (nd->type == EB_OP_CONV2D || nd->type == EB_OP_DEPTHWISE_CONV2D ||
                       nd->type == EB_OP_FULLY_CONNECTED))
    return 3; /* x, w, bias */
  return s->bpacked && s->bpacked[k] ? 2 : 0;
}

#define EB_CONST_SHARE 16 /* copy run-time constants only when they are at most 1/16 of the file */

/* A model is resident once, not twice: the weights this session's kernels read from their own
 * copies are given back to the page cache (eb_model_drop_pages). Pages of a mapping come back
 * on any read nearby (the kernel maps a fault's neighbours too), so when the constants still
 * read at run time (BatchNorm vectors, thresholds, ...) are small they are copied out first
 * and the whole mapping is dropped; int8 models, whose scales kernels read from the model
 * itself, keep their mapping and drop per tensor. */
static eb_status drop_copied_weights(eb_session *s, eb_error *err) {
  const eb_model *m = s->model;
  if (!m->map) return EB_OK;
  char *run_const = calloc((size_t)m->n_tensors + 1, 1);
  if (!run_const) return eb_fail(err, EB_ERR_NOMEM, "out of memory");
  size_t bytes = 0;
  int int8 = 0;
  for (int i = 0; i < m->n_tensors; i++) int8 |= m->tensors[i].dtype == EB_I8;
  for (int k = 0; k < m->n_nodes; k++) {
    const eb_node *nd = &m->nodes[k];
    for (int i = copied_inputs(s, k); i < nd->n_in; i++) {
      const int t = nd->in[i];
      if (t < 0 || !m->tensors[t].data || run_const[t]) continue;
      run_const[t] = 1;
      bytes += (m->tensors[t].nbytes + EB_ARENA_ALIGN - 1) / EB_ARENA_ALIGN * EB_ARENA_ALIGN;
    }
  }
  if (!int8 && bytes <= m->size / EB_CONST_SHARE && (s->consts = aligned_alloc(EB_ARENA_ALIGN, bytes + EB_ARENA_ALIGN))) {
    uint8_t *dst = s->consts;
    for (int t = 0; t < m->n_tensors; t++) {
      if (!run_const[t]) continue;
      memcpy(dst, m->tensors[t].data, m->tensors[t].nbytes);
      s->ptr[t] = dst;
      dst += (m->tensors[t].nbytes + EB_ARENA_ALIGN - 1) / EB_ARENA_ALIGN * EB_ARENA_ALIGN;
    }
    eb_model_drop_pages(m, m->base, m->size);
  } else {
    for (int k = 0; k < m->n_nodes; k++)
      for (int i = 1; i < copied_inputs(s, k); i++) {
        const int t = m->nodes[k].in[i];
        if (t >= 0 && m->tensors[t].data) eb_model_drop_pages(m, m->tensors[t].data, m->tensors[t].nbytes);
      }
  }
  free(run_const);
  return EB_OK;
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
  /* calloc: zeroed, so that an output read before any run is defined, without touching the
   * pages (a large calloc gets fresh zero pages), so they become resident at the first run,
   * after the transient of packing weights here, not on top of it */
  s->arena_raw = calloc(bytes + EB_ARENA_ALIGN, 1);
  s->arena = s->arena_raw ? (uint8_t *)s->arena_raw + (EB_ARENA_ALIGN - (uintptr_t)s->arena_raw % EB_ARENA_ALIGN) % EB_ARENA_ALIGN
                          : NULL;
  s->ptr = calloc((size_t)m->n_tensors + 1, sizeof *s->ptr);
  s->xnn_op = calloc((size_t)m->n_nodes + 1, sizeof *s->xnn_op);
  s->packed = calloc((size_t)m->n_nodes + 1, sizeof *s->packed);
  s->q8op = calloc((size_t)m->n_nodes + 1, sizeof *s->q8op);
  s->band = calloc((size_t)m->n_nodes + 1, sizeof *s->band);
  size_t zero_floats = 1;
  for (int k = 0; k < m->n_nodes; k++)
    if (m->nodes[k].backend == EB_BACKEND_HETCONV_FUSED) {
      size_t c = (size_t)m->tensors[m->nodes[k].in[0]].dims[3];
      if (c > zero_floats) zero_floats = c;
    }
  s->zero_row = calloc(zero_floats, sizeof *s->zero_row);
  if (!s->arena || !s->ptr || !s->xnn_op || !s->packed || !s->q8op || !s->band || !s->zero_row) {
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
  st = drop_copied_weights(s, err);
  if (st) {
    eb_session_free(s);
    return st;
  }
  *out = s;
  return EB_OK;
}

void eb_session_free(eb_session *s) {
  if (!s) return;
  for (int k = 0; s->xnn_op && k < s->model->n_nodes; k++) eb_xnn_delete(s->xnn_op[k]);
  for (int k = 0; s->packed && k < s->model->n_nodes; k++) free(s->packed[k]);
  for (int k = 0; s->q8op && k < s->model->n_nodes; k++) eb_q8_delete(s->q8op[k]);
  for (int k = 0; s->band && k < s->model->n_nodes; k++) eb_band_free(s->band[k]);
  free(s->q8op);
  free(s->band);
  free(s->xnn_op);
  free(s->packed);
  free(s->zero_row);
  free(s->consts);
  eb_pool_free(s->pool);
  eb_bin_prepack_free(s);
  free(s->arena_raw);
  free(s->ptr);
  free(s);
}

/* NCHW <-> NHWC for one 4-D tensor of elem-byte elements. Four-byte elements (f32, i32) take
 * a typed loop over blocks of pixels, one plane at a time inside a block: the block's NHWC
 * bytes stay in L1 across the c passes, so each side is streamed once (plane at a time over
 * the whole image, each pass a strided walk over every line of the NHWC side, cost 0.15 ms
 * for a 224x224x3 input on every inference; the generic per-element copy ten times that).
 * Blocks are split over the session's threads: the copy is shorter, and the pool's workers
 * are awake by the first op, which on a stem is one parallel loop over a few large chunks. */
#define EB_LAYOUT_BLOCK 512 /* pixels */
typedef struct {
  const uint8_t *src;
  uint8_t *dst;
  size_t hw, c, blocks; /* blocks per image */
  int to_nhwc;
} layout_job;

static void layout_block(void *ctx, size_t b) {
  const layout_job *j = ctx;
  const size_t in = b / j->blocks, i0 = b % j->blocks * EB_LAYOUT_BLOCK;
  const size_t i1 = i0 + EB_LAYOUT_BLOCK < j->hw ? i0 + EB_LAYOUT_BLOCK : j->hw;
  if (j->to_nhwc && j->c == 3) {
    /* an image's three planes: a pixel at a time, its 12 NHWC bytes written in order (plane
     * at a time, each 4-byte store landed 12 bytes from the last: a 224x224 input took
     * 0.14 ms, half of it that way) */
    const uint8_t *s0 = j->src + in * 3 * j->hw * 4, *s1 = s0 + j->hw * 4, *s2 = s1 + j->hw * 4;
    uint8_t *d = j->dst + in * j->hw * 12;
    for (size_t i = i0; i < i1; i++) {
      memcpy(d + i * 12, s0 + i * 4, 4);
      memcpy(d + i * 12 + 4, s1 + i * 4, 4);
      memcpy(d + i * 12 + 8, s2 + i * 4, 4);
    }
    return;
  }
  for (size_t ic = 0; ic < j->c; ic++) {
    const size_t plane = (in * j->c + ic) * j->hw, base = in * j->hw * j->c + ic;
    /* memcpy of 4: one move, and no alignment asked of the caller's buffer */
    if (j->to_nhwc)
      for (size_t i = i0; i < i1; i++) memcpy(j->dst + (base + i * j->c) * 4, j->src + (plane + i) * 4, 4);
    else
      for (size_t i = i0; i < i1; i++) memcpy(j->dst + (plane + i) * 4, j->src + (base + i * j->c) * 4, 4);
  }
}

static void nchw_to_nhwc(eb_pool *pool, const eb_tensor *t, const uint8_t *src, uint8_t *dst, size_t elem,
                         int to_nhwc) {
  size_t n = (size_t)t->dims[0], h = (size_t)t->dims[1], w = (size_t)t->dims[2], c = (size_t)t->dims[3];
  if (elem == 4) {
    layout_job j = {src, dst, h * w, c, (h * w + EB_LAYOUT_BLOCK - 1) / EB_LAYOUT_BLOCK, to_nhwc};
    eb_parallel_for(pool, n * j.blocks, layout_block, &j);
    return;
  }
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
  if (t->io_layout == EB_LAYOUT_NCHW) nchw_to_nhwc(s->pool, t, data, s->ptr[m->inputs[index]], eb_dtype_size(t->dtype), 1);
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
  if (t->io_layout == EB_LAYOUT_NCHW) nchw_to_nhwc(s->pool, t, s->ptr[m->outputs[index]], data, eb_dtype_size(t->dtype), 0);
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
