/* One layer, two ways, same weights and input: the edgebnn runtime (eb_session_run
 * on a one-op model) and XNNPACK called directly (operators created here from the
 * model's weights, timed with xnn_run_operator alone), plus the same model on the
 * reference kernels (EDGEBNN_XNNPACK=0 EDGEBNN_KERNELS=ref at load). Prints one line:
 *   <edgebnn median us> <xnnpack median us or -1> <edgebnn backend> <ref median us>
 * Usage: bench_layers MODEL.ebnn REPS THREADS [PEER.ebnn]
 * With PEER, the XNNPACK operator is PEER's op 0 (HetConv vs the dense conv it
 * replaces). The two are timed alternately, run by run, so that load from other
 * processes hits both alike. run.py builds the models and renders the table
 * (README.md beside this file). */
#include <math.h>
#include <pthreadpool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xnnpack.h>

#include "internal.h"

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *t, int n) {
  qsort(t, (size_t)n, sizeof *t, cmp);
  return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

#define DIE(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr), exit(1))

static const void *data(const eb_model *m, const eb_node *nd, int i) {
  return i < nd->n_in && nd->in[i] >= 0 ? m->tensors[nd->in[i]].data : NULL;
}

static int8_t sat8(int v) { return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v); }
static int8_t q8(float v, const eb_tensor *t) { return sat8((int)lrintf(v / t->scale) + t->zero_point); }

/* The XNNPACK operator for node 0, created from its weights; NULL when XNNPACK has no
 * such operator. */
static xnn_operator_t direct_op(const eb_model *m, const eb_node *nd, const void *x, const void *x2, void *y,
                                pthreadpool_t tp) {
  const eb_tensor *xt = &m->tensors[nd->in[0]], *yt = &m->tensors[nd->out];
  const eb_tensor *wt = nd->n_in > 1 && nd->in[1] >= 0 ? &m->tensors[nd->in[1]] : NULL;
  const eb_params *p = &nd->p;
  xnn_operator_t op = NULL;
  enum xnn_status st = xnn_status_success;
  const size_t n = (size_t)xt->dims[0];
  const int i8 = xt->dtype == EB_I8;
  int8_t qmin = -128, qmax = 127;
  if (i8) {
    if (p->out_min > -INFINITY) qmin = q8(p->out_min, yt);
    if (p->out_max < INFINITY) qmax = q8(p->out_max, yt);
  }
  switch (nd->type) {
    case EB_OP_CONV2D:
    case EB_OP_DEPTHWISE_CONV2D:
    case EB_OP_FULLY_CONNECTED: {
      const int dw = nd->type == EB_OP_DEPTHWISE_CONV2D, fc = nd->type == EB_OP_FULLY_CONNECTED;
      const size_t ic = (size_t)xt->dims[xt->ndim - 1], oc = (size_t)yt->dims[yt->ndim - 1];
      uint32_t kh = 1, kw = 1, groups = 1;
      if (!fc) {
        kh = (uint32_t)(dw ? wt->dims[0] : wt->dims[1]);
        kw = (uint32_t)(dw ? wt->dims[1] : wt->dims[2]);
        groups = dw ? (uint32_t)ic : (uint32_t)p->groups;
      }
      if (!i8 && fc) {
        st = xnn_create_fully_connected_nc_f32(ic, oc, ic, oc, wt->data, data(m, nd, 2), p->out_min, p->out_max, 0, &op);
        if (!st) st = xnn_setup_fully_connected_nc_f32(op, n, x, y, tp);
      } else if (!i8) {
        st = xnn_create_convolution2d_nhwc_f32(p->pads[0], p->pads[3], p->pads[2], p->pads[1], kh, kw, p->strides[0],
                                               p->strides[1], p->dilations[0], p->dilations[1], groups, ic / groups,
                                               oc / groups, ic, oc, wt->data, data(m, nd, 2), p->out_min, p->out_max,
                                               dw ? XNN_FLAG_DEPTHWISE_CONVOLUTION : 0, &op);
        if (!st) st = xnn_setup_convolution2d_nhwc_f32(op, n, (size_t)xt->dims[1], (size_t)xt->dims[2], x, y, tp);
      } else {
        /* per-channel int8: FC is a 1x1 convolution over N pixels */
        float *scales = malloc(oc * sizeof(float));
        for (size_t c = 0; c < oc; c++)
          scales[c] = wt->quant_kind == EBF_QUANT_CHANNEL ? ((const float *)m->tensors[wt->scales_tensor].data)[c]
                                                          : wt->scale;
        st = xnn_create_convolution2d_nhwc_qc8(
            fc ? 0 : p->pads[0], fc ? 0 : p->pads[3], fc ? 0 : p->pads[2], fc ? 0 : p->pads[1], kh, kw,
            fc ? 1 : p->strides[0], fc ? 1 : p->strides[1], fc ? 1 : p->dilations[0], fc ? 1 : p->dilations[1], groups,
            ic / groups, oc / groups, ic, oc, (int8_t)xt->zero_point, xt->scale, scales, wt->data, data(m, nd, 2),
            (int8_t)yt->zero_point, yt->scale, qmin, qmax, dw ? XNN_FLAG_DEPTHWISE_CONVOLUTION : 0, &op);
        free(scales);
        if (!st)
          st = fc ? xnn_setup_convolution2d_nhwc_qc8(op, n, 1, 1, x, y, tp)
                  : xnn_setup_convolution2d_nhwc_qc8(op, n, (size_t)xt->dims[1], (size_t)xt->dims[2], x, y, tp);
      }
      break;
    }
    case EB_OP_MAX_POOL2D: {
      const size_t c = (size_t)xt->dims[3];
      if (i8) {
        st = xnn_create_max_pooling2d_nhwc_s8(p->pads[0], p->pads[3], p->pads[2], p->pads[1], p->kernel[0], p->kernel[1],
                                              p->strides[0], p->strides[1], 1, 1, c, c, c, qmin, qmax, 0, &op);
        if (!st) st = xnn_setup_max_pooling2d_nhwc_s8(op, n, (size_t)xt->dims[1], (size_t)xt->dims[2], x, y, tp);
      } else {
        st = xnn_create_max_pooling2d_nhwc_f32(p->pads[0], p->pads[3], p->pads[2], p->pads[1], p->kernel[0],
                                               p->kernel[1], p->strides[0], p->strides[1], 1, 1, c, c, c, -INFINITY,
                                               INFINITY, 0, &op);
        if (!st) st = xnn_setup_max_pooling2d_nhwc_f32(op, n, (size_t)xt->dims[1], (size_t)xt->dims[2], x, y, tp);
      }
      break;
    }
    case EB_OP_AVG_POOL2D: {
      if (i8) return NULL;
      const size_t c = (size_t)xt->dims[3];
      st = xnn_create_average_pooling2d_nhwc_f32(p->pads[0], p->pads[3], p->pads[2], p->pads[1], p->kernel[0],
                                                 p->kernel[1], p->strides[0], p->strides[1], c, c, c, -INFINITY,
                                                 INFINITY, 0, &op);
      if (!st) st = xnn_setup_average_pooling2d_nhwc_f32(op, n, (size_t)xt->dims[1], (size_t)xt->dims[2], x, y, tp);
      break;
    }
    case EB_OP_GLOBAL_AVG_POOL: {
      const size_t c = (size_t)xt->dims[3], hw = (size_t)(xt->dims[1] * xt->dims[2]);
      if (i8) {
        st = xnn_create_global_average_pooling_nwc_qs8(c, c, c, (int8_t)xt->zero_point, xt->scale,
                                                       (int8_t)yt->zero_point, yt->scale, -128, 127, 0, &op);
        if (!st) st = xnn_setup_global_average_pooling_nwc_qs8(op, n, hw, x, y, tp);
      } else {
        st = xnn_create_global_average_pooling_nwc_f32(c, c, c, -INFINITY, INFINITY, 0, &op);
        if (!st) st = xnn_setup_global_average_pooling_nwc_f32(op, n, hw, x, y, tp);
      }
      break;
    }
    case EB_OP_ADD: {
      const size_t shape[1] = {xt->count};
      const eb_tensor *bt = &m->tensors[nd->in[1]];
      if (i8) {
        st = xnn_create_add_nd_qs8((int8_t)xt->zero_point, xt->scale, (int8_t)bt->zero_point, bt->scale,
                                   (int8_t)yt->zero_point, yt->scale, qmin, qmax, 0, &op);
        if (!st) st = xnn_setup_add_nd_qs8(op, 1, shape, 1, shape, x, x2, y, tp);
      } else {
        st = xnn_create_add_nd_f32(p->out_min, p->out_max, 0, &op);
        if (!st) st = xnn_setup_add_nd_f32(op, 1, shape, 1, shape, x, x2, y, tp);
      }
      break;
    }
    default:
      return NULL;
  }
  if (st) DIE("XNNPACK create/setup failed (status %d) for op %s", (int)st, nd->name);
  return op;
}

int main(int argc, char **argv) {
  if (argc != 4 && argc != 5) DIE("usage: bench_layers MODEL.ebnn REPS THREADS [PEER.ebnn]");
  const int reps = atoi(argv[2]), threads = atoi(argv[3]);
  eb_model *m;
  eb_session *s;
  eb_error err;
  if (eb_model_load_file(argv[1], &m, &err)) DIE("%s", err.message);
  eb_session_options o;
  eb_session_options_init(&o);
  o.threads = threads;
  if (eb_session_create(m, &o, &s, &err)) DIE("%s", err.message);
  /* the same model on the reference kernels: the runtime decides backends at load */
  eb_model *rm;
  eb_session *rs;
  setenv("EDGEBNN_XNNPACK", "0", 1);
  setenv("EDGEBNN_KERNELS", "ref", 1);
  if (eb_model_load_file(argv[1], &rm, &err)) DIE("%s", err.message);
  unsetenv("EDGEBNN_XNNPACK");
  unsetenv("EDGEBNN_KERNELS");
  if (eb_session_create(rm, &o, &rs, &err)) DIE("%s", err.message);
  if (xnn_initialize(NULL) != xnn_status_success) DIE("xnn_initialize failed");
  pthreadpool_t tp = threads > 1 ? pthreadpool_create((size_t)threads) : NULL;

  /* the same random inputs for both */
  const int n_in = eb_model_num_inputs(m);
  void *bufs[2] = {NULL, NULL};
  for (int i = 0; i < n_in && i < 2; i++) {
    const eb_tensor *t = &m->tensors[m->inputs[i]];
    /* 64-byte aligned like the arena, so neither side gets an alignment edge */
    size_t bytes = (t->nbytes + XNN_EXTRA_BYTES + 63) / 64 * 64;
    bufs[i] = aligned_alloc(64, bytes);
    memset(bufs[i], 0, bytes);
    srand(7 + (unsigned)i);
    for (size_t j = 0; j < t->count; j++) {
      if (t->dtype == EB_F32) ((float *)bufs[i])[j] = (float)rand() / (float)RAND_MAX * 2.0f - 1.0f;
      else ((int8_t *)bufs[i])[j] = (int8_t)(rand() % 256 - 128);
    }
    if (eb_session_set_input(s, i, bufs[i], t->nbytes, &err)) DIE("%s", err.message);
    if (eb_session_set_input(rs, i, bufs[i], t->nbytes, &err)) DIE("%s", err.message);
  }
  eb_model *pm = m;
  if (argc == 5 && eb_model_load_file(argv[4], &pm, &err)) DIE("%s", err.message);
  const eb_node *nd = &pm->nodes[0];
  size_t ybytes = (pm->tensors[nd->out].nbytes + XNN_EXTRA_BYTES + 63) / 64 * 64;
  void *ybuf = aligned_alloc(64, ybytes);
  memset(ybuf, 0, ybytes);
  xnn_operator_t op = pm->n_nodes == 1 ? direct_op(pm, nd, bufs[0], bufs[1], ybuf, tp) : NULL;

  double *t = malloc(sizeof(double) * (size_t)reps), *tx = malloc(sizeof(double) * (size_t)reps);
  for (int w = 0; w < 3; w++) {
    eb_session_run(s, &err);
    if (op) xnn_run_operator(op, tp);
  }
  for (int r = 0; r < reps; r++) {
    double t0 = now_us();
    eb_session_run(s, &err);
    t[r] = now_us() - t0;
    if (op) {
      t0 = now_us();
      xnn_run_operator(op, tp);
      tx[r] = now_us() - t0;
    }
  }
  double med_eb = median(t, reps), med_x = op ? median(tx, reps) : -1;
  /* the reference kernels are slow: a few runs give a stable median */
  const int ref_reps = reps < 5 ? reps : 5;
  eb_session_run(rs, &err);
  for (int r = 0; r < ref_reps; r++) {
    double t0 = now_us();
    eb_session_run(rs, &err);
    t[r] = now_us() - t0;
  }
  double med_ref = median(t, ref_reps);
  if (op) xnn_delete_operator(op);
  if (pm != m) eb_model_free(pm);
  eb_op_info info;
  eb_model_op_info(m, 0, &info);
  printf("%.2f %.2f %s %.2f\n", med_eb, med_x, info.backend, med_ref);
  if (tp) pthreadpool_destroy(tp);
  eb_session_free(s);
  eb_model_free(m);
  eb_session_free(rs);
  eb_model_free(rm);
  free(t), free(tx), free(ybuf), free(bufs[0]), free(bufs[1]);
  return 0;
}
