#include "xnn.h"

#if defined(EB_HAVE_XNNPACK)
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <xnnpack.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_ok;
static void init(void) { init_ok = xnn_initialize(NULL) == xnn_status_success; }

int eb_xnn_available(void) {
  pthread_once(&init_once, init);
  return init_ok;
}

static const eb_tensor *T(const eb_model *m, const eb_node *nd, int i) {
  return i < nd->n_in && nd->in[i] >= 0 ? &m->tensors[nd->in[i]] : NULL;
}

/* XNNPACK rejects pools of one tap and strides longer than the window. */
static int pool_ok(const eb_params *p) {
  return p->kernel[0] * p->kernel[1] > 1 && p->strides[0] <= p->kernel[0] && p->strides[1] <= p->kernel[1];
}

static int any_pad(const eb_params *p) { return p->pads[0] || p->pads[1] || p->pads[2] || p->pads[3]; }

static int8_t sat8(float v) { return (int8_t)(v > 127.0f ? 127 : v < -128.0f ? -128 : (int)v); }

/* The fused activation as an int8 range: the same values the reference kernels use. */
static void q8_range(const eb_tensor *y, const eb_params *p, int8_t *lo, int8_t *hi) {
  *lo = p->out_min > -INFINITY ? sat8(roundf(p->out_min / y->scale) + (float)y->zero_point) : -128;
  *hi = p->out_max < INFINITY ? sat8(roundf(p->out_max / y->scale) + (float)y->zero_point) : 127;
}

static const float *w_scale_of(const eb_model *m, const eb_tensor *w, size_t c) {
  return w->quant_kind == EBF_QUANT_CHANNEL ? (const float *)m->tensors[w->scales_tensor].data + c : &w->scale;
}

/* Creates the node's operator (packing its weights); kscales: per-channel weight
 * scales for int8 layers, filled by the caller. */
static enum xnn_status create_op(const eb_model *m, const eb_node *nd, const float *kscales, xnn_operator_t *op) {
  const eb_tensor *x = T(m, nd, 0), *w = T(m, nd, 1), *y = &m->tensors[nd->out], *bt = T(m, nd, 2);
  const eb_params *p = &nd->p;
  const int i8 = x->dtype == EB_I8;
  const void *b = bt && nd->type != EB_OP_ADD ? bt->data : NULL;
  int8_t qmin = -128, qmax = 127;
  if (i8) q8_range(y, p, &qmin, &qmax);
  const uint32_t pt = (uint32_t)p->pads[0], pl = (uint32_t)p->pads[1], pb = (uint32_t)p->pads[2],
                 pr = (uint32_t)p->pads[3];
  switch (nd->type) {
    case EB_OP_CONV2D:
    case EB_OP_DEPTHWISE_CONV2D:
    case EB_OP_FULLY_CONNECTED: {
      const int dw = nd->type == EB_OP_DEPTHWISE_CONV2D, fc = nd->type == EB_OP_FULLY_CONNECTED;
      const size_t ic = (size_t)x->dims[x->ndim - 1], oc = (size_t)y->dims[y->ndim - 1];
      const uint32_t kh = fc ? 1 : (uint32_t)(dw ? w->dims[0] : w->dims[1]);
      const uint32_t kw = fc ? 1 : (uint32_t)(dw ? w->dims[1] : w->dims[2]);
      const uint32_t groups = dw ? (uint32_t)ic : fc ? 1 : (uint32_t)p->groups;
      const uint32_t flags = dw ? XNN_FLAG_DEPTHWISE_CONVOLUTION : 0;
      if (fc && !i8) return xnn_create_fully_connected_nc_f32(ic, oc, ic, oc, w->data, b, p->out_min, p->out_max, 0, op);
      if (!i8)
        return xnn_create_convolution2d_nhwc_f32(pt, pr, pb, pl, kh, kw, (uint32_t)p->strides[0],
                                                 (uint32_t)p->strides[1], (uint32_t)p->dilations[0],
                                                 (uint32_t)p->dilations[1], groups, ic / groups, oc / groups, ic, oc,
                                                 w->data, b, p->out_min, p->out_max, flags, op);
      /* per-channel int8 (qc8); this XNNPACK has no qc8 fully connected, so FC is a
       * 1x1 convolution over N one-pixel images */
      if (fc)
        return xnn_create_convolution2d_nhwc_qc8(0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, ic, oc, ic, oc,
                                                 (int8_t)x->zero_point, x->scale, kscales, w->data, b,
                                                 (int8_t)y->zero_point, y->scale, qmin, qmax, 0, op);
      return xnn_create_convolution2d_nhwc_qc8(pt, pr, pb, pl, kh, kw, (uint32_t)p->strides[0],
                                               (uint32_t)p->strides[1], (uint32_t)p->dilations[0],
                                               (uint32_t)p->dilations[1], groups, ic / groups, oc / groups, ic, oc,
                                               (int8_t)x->zero_point, x->scale, kscales, w->data, b,
                                               (int8_t)y->zero_point, y->scale, qmin, qmax, flags, op);
    }
    case EB_OP_MAX_POOL2D: {
      const size_t c = (size_t)x->dims[3];
      if (i8)
        return xnn_create_max_pooling2d_nhwc_s8(pt, pr, pb, pl, (uint32_t)p->kernel[0], (uint32_t)p->kernel[1],
                                                (uint32_t)p->strides[0], (uint32_t)p->strides[1], 1, 1, c, c, c, qmin,
                                                qmax, 0, op);
      return xnn_create_max_pooling2d_nhwc_f32(pt, pr, pb, pl, (uint32_t)p->kernel[0], (uint32_t)p->kernel[1],
                                               (uint32_t)p->strides[0], (uint32_t)p->strides[1], 1, 1, c, c, c,
                                               -INFINITY, INFINITY, 0, op);
    }
    case EB_OP_AVG_POOL2D: {
      const size_t c = (size_t)x->dims[3];
      return xnn_create_average_pooling2d_nhwc_f32(pt, pr, pb, pl, (uint32_t)p->kernel[0], (uint32_t)p->kernel[1],
                                                   (uint32_t)p->strides[0], (uint32_t)p->strides[1], c, c, c,
                                                   -INFINITY, INFINITY, 0, op);
    }
    case EB_OP_GLOBAL_AVG_POOL: {
      const size_t c = (size_t)x->dims[3];
      if (i8)
        return xnn_create_global_average_pooling_nwc_qs8(c, c, c, (int8_t)x->zero_point, x->scale,
                                                         (int8_t)y->zero_point, y->scale, -128, 127, 0, op);
      return xnn_create_global_average_pooling_nwc_f32(c, c, c, -INFINITY, INFINITY, 0, op);
    }
    case EB_OP_ADD:
      if (i8)
        return xnn_create_add_nd_qs8((int8_t)x->zero_point, x->scale, (int8_t)w->zero_point, w->scale,
                                     (int8_t)y->zero_point, y->scale, qmin, qmax, 0, op);
      return xnn_create_add_nd_f32(p->out_min, p->out_max, 0, op);
    default:
      return xnn_status_unsupported_parameter;
  }
}

static enum xnn_status setup_op(const eb_session *s, const eb_node *nd, xnn_operator_t op) {
  const eb_model *m = s->model;
  const eb_tensor *x = T(m, nd, 0);
  pthreadpool_t tp = (pthreadpool_t)eb_pool_pthreadpool(s->pool);
  const void *in0 = s->ptr[nd->in[0]];
  void *yp = s->ptr[nd->out];
  const size_t n = (size_t)x->dims[0];
  const int i8 = x->dtype == EB_I8;
  switch (nd->type) {
    case EB_OP_CONV2D:
    case EB_OP_DEPTHWISE_CONV2D:
      return i8 ? xnn_setup_convolution2d_nhwc_qc8(op, n, (size_t)x->dims[1], (size_t)x->dims[2], in0, yp, tp)
                : xnn_setup_convolution2d_nhwc_f32(op, n, (size_t)x->dims[1], (size_t)x->dims[2], in0, yp, tp);
    case EB_OP_FULLY_CONNECTED:
      return i8 ? xnn_setup_convolution2d_nhwc_qc8(op, n, 1, 1, in0, yp, tp)
                : xnn_setup_fully_connected_nc_f32(op, n, in0, yp, tp);
    case EB_OP_MAX_POOL2D:
      return i8 ? xnn_setup_max_pooling2d_nhwc_s8(op, n, (size_t)x->dims[1], (size_t)x->dims[2], in0, yp, tp)
                : xnn_setup_max_pooling2d_nhwc_f32(op, n, (size_t)x->dims[1], (size_t)x->dims[2], in0, yp, tp);
    case EB_OP_AVG_POOL2D:
      return xnn_setup_average_pooling2d_nhwc_f32(op, n, (size_t)x->dims[1], (size_t)x->dims[2], in0, yp, tp);
    case EB_OP_GLOBAL_AVG_POOL: {
      const size_t hw = (size_t)(x->dims[1] * x->dims[2]);
      return i8 ? xnn_setup_global_average_pooling_nwc_qs8(op, n, hw, in0, yp, tp)
                : xnn_setup_global_average_pooling_nwc_f32(op, n, hw, in0, yp, tp);
    }
    case EB_OP_ADD: {
      /* same shapes: one flat axis is the cheapest broadcast-free form */
      const size_t shape[1] = {x->count};
      const void *in1 = s->ptr[nd->in[1]];
      return i8 ? xnn_setup_add_nd_qs8(op, 1, shape, 1, shape, in0, in1, yp, tp)
                : xnn_setup_add_nd_f32(op, 1, shape, 1, shape, in0, in1, yp, tp);
    }
    default:
      return xnn_status_unsupported_parameter;
  }
}

static int env_off(void) {
  /* EDGEBNN_XNNPACK=0 keeps models loaded from now on on the reference kernels
   * (tests compare the two paths in one process) */
  const char *e = getenv("EDGEBNN_XNNPACK");
  return e && e[0] == '0';
}

int eb_xnn_supports(const eb_model *m, const eb_node *nd) {
  if (env_off() || !eb_xnn_available()) return 0;
  const eb_tensor *x = T(m, nd, 0), *w = T(m, nd, 1), *y = &m->tensors[nd->out];
  const eb_params *p = &nd->p;
  if (!(p->out_min < p->out_max)) return 0;
  if (x->dtype == EB_F32) {
    switch (nd->type) {
      case EB_OP_CONV2D:
      case EB_OP_DEPTHWISE_CONV2D:
      case EB_OP_FULLY_CONNECTED:
      case EB_OP_GLOBAL_AVG_POOL:
      case EB_OP_ADD:
        return 1;
      case EB_OP_MAX_POOL2D:
        return pool_ok(p);
      case EB_OP_AVG_POOL2D:
        /* XNNPACK averages over the taps inside the input, which is count_include_pad=0 */
        return pool_ok(p) && (!p->count_include_pad || !any_pad(p));
      default:
        return 0;
    }
  }
  if (x->dtype != EB_I8) return 0;
  switch (nd->type) {
    case EB_OP_CONV2D:
    case EB_OP_DEPTHWISE_CONV2D:
    case EB_OP_FULLY_CONNECTED: {
      /* qc8 weights are symmetric: asymmetric (uint8-origin) weights stay on the reference kernels */
      if (w->quant_kind == EBF_QUANT_TENSOR && w->zero_point != 0) return 0;
      /* qc8 requantizes in float: XNNPACK accepts scales in [2^-32, 256) */
      const size_t oc = (size_t)y->dims[y->ndim - 1];
      for (size_t c = 0; c < oc; c++) {
        const float r = x->scale * *w_scale_of(m, w, c) / y->scale;
        if (!(r >= 0x1.0p-32f && r < 256.0f)) return 0;
      }
      return 1;
    }
    case EB_OP_MAX_POOL2D:
      if (!pool_ok(p)) return 0;
      break;
    case EB_OP_GLOBAL_AVG_POOL:
    case EB_OP_ADD:
      break;
    default:
      return 0; /* int8 average pooling: this XNNPACK has none */
  }
  /* no weights to pack: a trial creation is the exact test of XNNPACK's scale limits */
  xnn_operator_t op = NULL;
  const int ok = create_op(m, nd, NULL, &op) == xnn_status_success;
  if (op) xnn_delete_operator(op);
  return ok;
}

static eb_status fail(eb_error *err, const eb_node *nd, const char *what, enum xnn_status st) {
  return eb_fail(err, st == xnn_status_out_of_memory ? EB_ERR_NOMEM : EB_ERR_UNSUPPORTED,
                 "op '%s': XNNPACK %s failed (status %d)", nd->name, what, (int)st);
}

eb_status eb_xnn_create(const eb_session *s, const eb_node *nd, void **out, eb_error *err) {
  const eb_model *m = s->model;
  const eb_tensor *w = T(m, nd, 1), *y = &m->tensors[nd->out];
  float *kscales = NULL;
  xnn_operator_t op = NULL;
  *out = NULL;
  if (T(m, nd, 0)->dtype == EB_I8 && w && w->data) {
    /* qc8 wants one scale per output channel, also for per-tensor weights; it copies them */
    const size_t oc = (size_t)y->dims[y->ndim - 1];
    kscales = malloc(oc * sizeof *kscales);
    if (!kscales) return eb_fail(err, EB_ERR_NOMEM, "op '%s': out of memory", nd->name);
    for (size_t c = 0; c < oc; c++) kscales[c] = *w_scale_of(m, w, c);
  }
  enum xnn_status st = create_op(m, nd, kscales, &op);
  free(kscales);
  if (st) return fail(err, nd, "create", st);
  st = setup_op(s, nd, op);
  if (st) {
    xnn_delete_operator(op);
    return fail(err, nd, "setup", st);
  }
  *out = op;
  return EB_OK;
}

eb_status eb_xnn_create_conv_rows(const eb_session *s, const eb_node *nd, int pad_top, int pad_bottom, int in_h,
                                  const void *x, void *y, void **out, eb_error *err) {
  const eb_model *m = s->model;
  const eb_tensor *xt = T(m, nd, 0);
  /* the node itself with the band's vertical padding: the same operator otherwise, so each
   * output pixel sums the same products in the same order as the whole-map operator */
  eb_node band = *nd;
  band.p.pads[0] = pad_top;
  band.p.pads[2] = pad_bottom;
  xnn_operator_t op = NULL;
  *out = NULL;
  enum xnn_status st = create_op(m, &band, NULL, &op);
  if (st) return fail(err, nd, "create (band)", st);
  /* run by one thread of a parallel loop (eb_xnn_run_alone): set up for none */
  st = xnn_setup_convolution2d_nhwc_f32(op, 1, (size_t)in_h, (size_t)xt->dims[2], x, y, NULL);
  if (st) {
    xnn_delete_operator(op);
    return fail(err, nd, "setup (band)", st);
  }
  *out = op;
  return EB_OK;
}

void eb_xnn_run(const eb_session *s, void *op) {
  /* setup already checked every argument; a run cannot fail short of a bug */
  xnn_run_operator((xnn_operator_t)op, (pthreadpool_t)eb_pool_pthreadpool(s->pool));
}

void eb_xnn_run_alone(void *op) { xnn_run_operator((xnn_operator_t)op, NULL); }

void eb_xnn_delete(void *op) {
  if (op) xnn_delete_operator((xnn_operator_t)op);
}

#else /* built without XNNPACK: every node runs on the reference kernels */

int eb_xnn_available(void) { return 0; }
int eb_xnn_supports(const eb_model *m, const eb_node *nd) {
  (void)m;
  (void)nd;
  return 0;
}
eb_status eb_xnn_create(const eb_session *s, const eb_node *nd, void **op, eb_error *err) {
  (void)s;
  *op = NULL;
  return eb_fail(err, EB_ERR_UNSUPPORTED, "op '%s': this build has no XNNPACK", nd->name);
}
eb_status eb_xnn_create_conv_rows(const eb_session *s, const eb_node *nd, int pad_top, int pad_bottom, int in_h,
                                  const void *x, void *y, void **op, eb_error *err) {
  (void)s, (void)pad_top, (void)pad_bottom, (void)in_h, (void)x, (void)y;
  *op = NULL;
  return eb_fail(err, EB_ERR_UNSUPPORTED, "op '%s': this build has no XNNPACK", nd->name);
}
void eb_xnn_run(const eb_session *s, void *op) {
  (void)s;
  (void)op;
}
void eb_xnn_run_alone(void *op) { (void)op; }
void eb_xnn_delete(void *op) { (void)op; }
#endif
