/* The op layer: checks each node's dtypes, shapes and attributes once at load, and
 * dispatches it to a kernel at run time. Kernels trust what this file checked. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "band.h"
#include "bin_ops.h"
#include "float/hetconv.h"
#include "internal.h"
#include "kernels.h"
#include "q8/q8.h"
#include "ref/ref.h"
#include "q8_ops.h"
#include "xnn.h"

static const char *const OP_NAMES[EB_OP_COUNT_] = {
    "?", "CONV2D", "DEPTHWISE_CONV2D", "FULLY_CONNECTED", "HETCONV2D", "BCONV2D", "BFULLY_CONNECTED",
    "KBIT_CONV2D", "HORQ_CONV2D", "SIGN_PACK", "UNPACK", "MAX_POOL2D", "AVG_POOL2D", "BMAX_POOL2D",
    "GLOBAL_AVG_POOL", "ADD", "CONCAT", "RELU", "RELU6", "PRELU", "HARDTANH", "AFFINE", "RESHAPE",
    "TRANSPOSE", "CHANNEL_SHUFFLE", "SOFTMAX", "QUANTIZE", "DEQUANTIZE", "ABS", "CHANNEL_MEAN", "MUL"};

const char *eb_op_type_name(int type) { return type > 0 && type < EB_OP_COUNT_ ? OP_NAMES[type] : "?"; }

static const eb_tensor *input(const eb_model *m, const eb_node *nd, int i);

const char *eb_op_backend(const eb_model *m, const eb_node *node) {
  if (!node) return "ref";
  if (node->skipped) return "fused"; /* into a later op (fuse.c) */
  switch (node->backend) {
    case EB_BACKEND_BINARY: return eb_kernels_best()->name;
    case EB_BACKEND_XNNPACK: return "xnnpack";
    case EB_BACKEND_HETCONV_FUSED: return "hetconv-fused";
    case EB_BACKEND_Q8: return eb_q8_backend_name();
    case EB_BACKEND_BAND: return "xnnpack-band";
    default:
      /* QUANTIZE and int8 GLOBAL_AVG_POOL run in the reference switch but on q8 kernels (see run_ref) */
      if (!eb_q8_enabled()) return "ref";
      if (node->type == EB_OP_QUANTIZE) return eb_q8_backend_name();
      if (node->type == EB_OP_GLOBAL_AVG_POOL && input(m, node, 0) && input(m, node, 0)->dtype == EB_I8) {
        int n;
        return eb_q8_list(&n)[0].name; /* its one kernel is the portable variant's */
      }
      return "ref";
  }
}

static int pick_backend(const eb_model *m, const eb_node *nd) {
  /* binary ops go through the run-time kernel pick (kernels.c) */
  if (nd->type == EB_OP_BCONV2D || nd->type == EB_OP_BFULLY_CONNECTED || nd->type == EB_OP_KBIT_CONV2D ||
      nd->type == EB_OP_HORQ_CONV2D || nd->type == EB_OP_SIGN_PACK || nd->type == EB_OP_BMAX_POOL2D)
    return EB_BACKEND_BINARY;
  if (nd->type == EB_OP_HETCONV2D) {
    /* EDGEBNN_KERNELS=ref: reference kernels only (as for the binary kernels) */
    const char *env = getenv("EDGEBNN_KERNELS");
    return env && strcmp(env, "ref") == 0 ? EB_BACKEND_REF : EB_BACKEND_HETCONV_FUSED;
  }
  if (eb_q8_supports(m, nd)) return EB_BACKEND_Q8;
  /* XNNPACK requantizes int8 in float (not TFLite's fixed point): with q8 on, the int8 ops
   * q8 lacks stay exact on ref, except max pooling, which XNNPACK computes exactly */
  const eb_tensor *x = input(m, nd, 0);
  if (x && x->dtype == EB_I8 && eb_q8_enabled() && nd->type != EB_OP_MAX_POOL2D) return EB_BACKEND_REF;
  if (eb_xnn_supports(m, nd)) return EB_BACKEND_XNNPACK;
  return EB_BACKEND_REF;
}

/* ---- checks -------------------------------------------------------------------- */

#define REQ(cond, ...)                                                                    \
  do {                                                                                    \
    if (!(cond)) return fail_op(err, nd, __VA_ARGS__);                                    \
  } while (0)

static eb_status fail_op(eb_error *err, const eb_node *nd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static eb_status fail_op(eb_error *err, const eb_node *nd, const char *fmt, ...) {
  char what[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return eb_fail(err, EB_ERR_FORMAT, "op '%s' (%s): %s", nd->name, eb_op_type_name(nd->type), what);
}

static const eb_tensor *input(const eb_model *m, const eb_node *nd, int i) {
  return i < nd->n_in && nd->in[i] >= 0 ? &m->tensors[nd->in[i]] : NULL;
}

static int is(const eb_tensor *t, eb_dtype dt, int ndim) { return t && t->dtype == dt && (ndim < 0 || t->ndim == ndim); }

static int is_vec(const eb_tensor *t, eb_dtype dt, int64_t n) {
  return t && t->data && t->dtype == dt && t->ndim == 1 && t->dims[0] == n;
}

static int same_shape(const eb_tensor *a, const eb_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int d = 0; d < a->ndim; d++)
    if (a->dims[d] != b->dims[d]) return 0;
  return 1;
}

/* Inputs past `max_in` must be absent; optional ones (index >= n_required) may be. */
static eb_status check_arity(eb_error *err, const eb_node *nd, int n_required, int max_in) {
  REQ(nd->n_in <= max_in, "%d inputs, at most %d allowed", nd->n_in, max_in);
  for (int i = 0; i < n_required; i++) REQ(i < nd->n_in && nd->in[i] >= 0, "input %d is missing", i);
  return EB_OK;
}

/* Window geometry: fills g from input x [n,h,w,c], window kh x kw and attributes, then
 * checks that the output tensor has the size those imply. */
static eb_status window(eb_error *err, const eb_node *nd, const eb_tensor *x, const eb_tensor *y, int kh, int kw,
                        int oc, eb_conv_geom *g) {
  const eb_params *p = &nd->p;
  REQ(kh >= 1 && kw >= 1 && p->strides[0] >= 1 && p->strides[1] >= 1 && p->dilations[0] >= 1 && p->dilations[1] >= 1,
      "kernel, strides and dilations must be >= 1");
  int64_t span_h = (int64_t)(kh - 1) * p->dilations[0] + 1, span_w = (int64_t)(kw - 1) * p->dilations[1] + 1;
  int64_t ph = x->dims[1] + p->pads[0] + p->pads[2], pw = x->dims[2] + p->pads[1] + p->pads[3];
  REQ(ph >= span_h && pw >= span_w, "window %dx%d does not fit the padded %lldx%lld input", kh, kw, (long long)ph,
      (long long)pw);
  int64_t oh = (ph - span_h) / p->strides[0] + 1, ow = (pw - span_w) / p->strides[1] + 1;
  REQ(y->ndim == 4 && y->dims[0] == x->dims[0] && y->dims[1] == oh && y->dims[2] == ow && y->dims[3] == oc,
      "output shape must be [%lld,%lld,%lld,%d]", (long long)x->dims[0], (long long)oh, (long long)ow, oc);
  /* padding beyond a whole window would read nothing but padding: reject it as nonsense */
  REQ(p->pads[0] < span_h && p->pads[1] < span_w && p->pads[2] < span_h && p->pads[3] < span_w,
      "padding larger than the window");
  *g = (eb_conv_geom){(int)x->dims[0], (int)x->dims[1], (int)x->dims[2], (int)x->dims[3], (int)oh, (int)ow, oc,
                      kh, kw, p->strides[0], p->strides[1], p->dilations[0], p->dilations[1], p->pads[0], p->pads[1],
                      p->groups};
  return EB_OK;
}

static eb_conv_geom geom_of(const eb_model *m, const eb_node *nd);

static eb_status check_binary_epilogue(const eb_model *m, eb_error *err, const eb_node *nd, const eb_tensor *y,
                                       int64_t oc) {
  const eb_tensor *mult = input(m, nd, 2), *bias = input(m, nd, 3), *thr = input(m, nd, 4), *dir = input(m, nd, 5);
  if (y->dtype == EB_BIT1) {
    REQ(!mult && !bias, "a packed output takes thresholds and directions, not multiplier/bias");
    REQ(is_vec(thr, EB_I32, oc) && is_vec(dir, EB_I32, oc), "packed output needs constant i32 thresholds and directions of %lld",
        (long long)oc);
    REQ(nd->p.activation == EB_ACT_NONE, "a packed output cannot have an activation");
    const int32_t *d = dir->data;
    for (int64_t c = 0; c < oc; c++) REQ(d[c] == 1 || d[c] == -1, "direction %lld is %d, not +1 or -1", (long long)c, d[c]);
  } else {
    REQ(y->dtype == EB_F32, "output must be f32 or bit1");
    REQ(!thr && !dir, "thresholds/directions need a bit1 output");
    REQ(!mult || is_vec(mult, EB_F32, oc), "multiplier must be a constant f32 vector of %lld", (long long)oc);
    REQ(!bias || is_vec(bias, EB_F32, oc), "bias must be a constant f32 vector of %lld", (long long)oc);
  }
  return EB_OK;
}

static size_t acc_bytes(const eb_tensor *y, int order) {
  return y->count * sizeof(int32_t) * (size_t)order;
}

/* Scratch sizes are summed in 64 bits and must fit size_t: on a 32-bit target a
 * tensor the loader accepted can still need more scratch than the address space. */
static eb_status set_scratch(eb_error *err, eb_node *nd, uint64_t bytes) {
  REQ((uint64_t)(size_t)bytes == bytes && (size_t)bytes <= SIZE_MAX - EB_ARENA_ALIGN,
      "needs %llu scratch bytes, more than this %u-bit build can address", (unsigned long long)bytes,
      (unsigned)(sizeof(size_t) * CHAR_BIT));
  nd->scratch_bytes = (size_t)bytes;
  return EB_OK;
}

static uint64_t acc_bytes64(const eb_tensor *y, int order) {
  return (uint64_t)y->count * sizeof(int32_t) * (uint64_t)order;
}

static eb_status check_node(const eb_model *m, eb_node *nd, eb_error *err);

/* ---- int8 ---------------------------------------------------------------------- */

/* An int8 activation: per-tensor scale (the loader checked it is > 0) and an int8 zero point. */
static int is_q8(const eb_tensor *t) {
  return t && t->dtype == EB_I8 && t->quant_kind == EBF_QUANT_TENSOR && t->zero_point >= -128 && t->zero_point <= 127;
}

/* int8 weights quantized along `axis` (the output channels, symmetric) or per tensor, where a
 * zero point in [-128, 127] is allowed: TFLite's uint8 asymmetric models shifted to int8. */
static eb_status check_q8_weights(const eb_model *m, eb_error *err, const eb_node *nd, const eb_tensor *w, int axis) {
  REQ(w && w->dtype == EB_I8 && w->data, "int8 layers need constant int8 weights");
  if (w->quant_kind == EBF_QUANT_TENSOR) {
    REQ(w->zero_point >= -128 && w->zero_point <= 127, "int8 weights need a zero point in [-128, 127], got %d",
        (int)w->zero_point);
    return EB_OK;
  }
  REQ(w->quant_kind == EBF_QUANT_CHANNEL && w->quant_axis == axis,
      "int8 weights need a per-tensor scale or per-channel scales along axis %d (the output channels)", axis);
  if (w->zero_points_tensor == EBF_NONE) return EB_OK; /* symmetric by construction */
  const int32_t *zp = m->tensors[w->zero_points_tensor].data;
  for (int64_t c = 0; c < w->dims[axis]; c++)
    REQ(zp[c] == 0, "int8 weights must be symmetric: channel %lld has zero point %d", (long long)c, (int)zp[c]);
  return EB_OK;
}

static const float *w_scales(const eb_model *m, const eb_tensor *w, int *per_channel) {
  *per_channel = w->quant_kind == EBF_QUANT_CHANNEL;
  return *per_channel ? m->tensors[w->scales_tensor].data : &w->scale;
}

/* x, w, bias, y of an int8 conv/FC: everything but the geometry. Scratch holds the
 * per-channel multipliers, recomputed each run (oc values, cheap). */
static eb_status check_q8_linear(const eb_model *m, eb_error *err, eb_node *nd, int w_axis, int64_t oc, int64_t taps) {
  const eb_tensor *x = input(m, nd, 0), *w = input(m, nd, 1), *y = &m->tensors[nd->out];
  eb_status st;
  REQ(is_q8(x) && is_q8(y), "int8 layers need int8 input and output with a per-tensor scale and an int8 zero point");
  if ((st = check_q8_weights(m, err, nd, w, w_axis))) return st;
  REQ(!input(m, nd, 2) || is_vec(input(m, nd, 2), EB_I32, oc), "int8 bias must be a constant i32 vector of %lld",
      (long long)oc);
  /* |x - zp| <= 255 and |w - w_zp| <= 255: keep the int32 accumulator exact */
  REQ(taps <= INT32_MAX / (255 * 255) / 2, "%lld products per output would overflow the int32 accumulator",
      (long long)taps);
  return set_scratch(err, nd, (uint64_t)oc * (sizeof(int32_t) + sizeof(int)));
}

static eb_q8_io q8_io(const eb_tensor *x, const eb_tensor *y, const eb_params *p) {
  eb_q8_io q = {x->zero_point, y->zero_point, -128, 127, 0};
  /* TFLite's CalculateActivationRangeQuantized: zp + round(bound / scale), in float */
  if (p->out_min > -INFINITY) {
    float v = roundf(p->out_min / y->scale) + (float)y->zero_point;
    q.act_min = v > 127.0f ? 127 : v < -128.0f ? -128 : (int32_t)v;
  }
  if (p->out_max < INFINITY) {
    float v = roundf(p->out_max / y->scale) + (float)y->zero_point;
    q.act_max = v > 127.0f ? 127 : v < -128.0f ? -128 : (int32_t)v;
  }
  return q;
}

eb_status eb_op_check(const eb_model *m, eb_node *nd, eb_error *err) {
  eb_status st = check_node(m, nd, err);
  nd->backend = st == EB_OK ? pick_backend(m, nd) : EB_BACKEND_REF;
  return st;
}

static eb_status check_node(const eb_model *m, eb_node *nd, eb_error *err) {
  const eb_tensor *x = input(m, nd, 0), *w = input(m, nd, 1), *y = &m->tensors[nd->out];
  const eb_params *p = &nd->p;
  eb_conv_geom g;
  eb_status st;
  nd->scratch_bytes = 0;
  switch (nd->type) {
    case EB_OP_CONV2D: {
      if ((st = check_arity(err, nd, 2, 3))) return st;
      if (x && x->dtype == EB_I8) {
        REQ(is(x, EB_I8, 4) && is(w, EB_I8, 4), "needs int8 NHWC input and int8 [O,kh,kw,C/groups] weights");
        int64_t oc = w->dims[0], icg = w->dims[3];
        REQ(p->groups >= 1 && x->dims[3] % p->groups == 0 && oc % p->groups == 0 && icg * p->groups == x->dims[3],
            "groups=%d does not fit %lld input channels and weights for %lld per group", p->groups,
            (long long)x->dims[3], (long long)icg);
        if ((st = check_q8_linear(m, err, nd, 0, oc, w->dims[1] * w->dims[2] * icg))) return st;
        return window(err, nd, x, y, (int)w->dims[1], (int)w->dims[2], (int)oc, &g);
      }
      REQ(is(x, EB_F32, 4) && is(w, EB_F32, 4) && w->data, "needs f32 NHWC input and constant f32 [O,kh,kw,C/groups] weights");
      REQ(y->dtype == EB_F32, "output must be f32");
      int64_t oc = w->dims[0], icg = w->dims[3];
      REQ(p->groups >= 1 && x->dims[3] % p->groups == 0 && oc % p->groups == 0 && icg * p->groups == x->dims[3],
          "groups=%d does not fit %lld input channels and weights for %lld per group", p->groups, (long long)x->dims[3],
          (long long)icg);
      REQ(!input(m, nd, 2) || is_vec(input(m, nd, 2), EB_F32, oc), "bias must be a constant f32 vector of %lld", (long long)oc);
      return window(err, nd, x, y, (int)w->dims[1], (int)w->dims[2], (int)oc, &g);
    }
    case EB_OP_DEPTHWISE_CONV2D: {
      if ((st = check_arity(err, nd, 2, 3))) return st;
      if (x && x->dtype == EB_I8) {
        REQ(is(x, EB_I8, 4) && is(w, EB_I8, 3), "needs int8 NHWC input and int8 [kh,kw,C*mult] weights");
        REQ(w->dims[2] % x->dims[3] == 0, "%lld output channels is not a multiple of %lld", (long long)w->dims[2],
            (long long)x->dims[3]);
        REQ(p->groups == 1, "groups is not an attribute of depthwise conv");
        if ((st = check_q8_linear(m, err, nd, 2, w->dims[2], w->dims[0] * w->dims[1]))) return st;
        return window(err, nd, x, y, (int)w->dims[0], (int)w->dims[1], (int)w->dims[2], &g);
      }
      REQ(is(x, EB_F32, 4) && is(w, EB_F32, 3) && w->data, "needs f32 NHWC input and constant f32 [kh,kw,C*mult] weights");
      int64_t oc = w->dims[2];
      REQ(y->dtype == EB_F32 && oc % x->dims[3] == 0, "%lld output channels is not a multiple of %lld", (long long)oc,
          (long long)x->dims[3]);
      REQ(!input(m, nd, 2) || is_vec(input(m, nd, 2), EB_F32, oc), "bias must be a constant f32 vector of %lld", (long long)oc);
      REQ(p->groups == 1, "groups is not an attribute of depthwise conv");
      return window(err, nd, x, y, (int)w->dims[0], (int)w->dims[1], (int)oc, &g);
    }
    case EB_OP_FULLY_CONNECTED: {
      if ((st = check_arity(err, nd, 2, 3))) return st;
      if (x && x->dtype == EB_I8) {
        REQ(is(x, EB_I8, 2) && is(w, EB_I8, 2) && w->dims[1] == x->dims[1],
            "needs int8 [N,K] input and int8 [O,K] weights with matching K");
        REQ(y->ndim == 2 && y->dims[0] == x->dims[0] && y->dims[1] == w->dims[0], "output must be int8 [N,O]");
        return check_q8_linear(m, err, nd, 0, w->dims[0], w->dims[1]);
      }
      REQ(is(x, EB_F32, 2) && is(w, EB_F32, 2) && w->data && w->dims[1] == x->dims[1],
          "needs f32 [N,K] input and constant f32 [O,K] weights with matching K");
      REQ(is(y, EB_F32, 2) && y->dims[0] == x->dims[0] && y->dims[1] == w->dims[0], "output must be f32 [N,O]");
      REQ(!input(m, nd, 2) || is_vec(input(m, nd, 2), EB_F32, w->dims[0]), "bias must be a constant f32 vector");
      return EB_OK;
    }
    case EB_OP_HETCONV2D: {
      if ((st = check_arity(err, nd, 3, 4))) return st;
      const eb_tensor *w1 = input(m, nd, 2);
      REQ(is(x, EB_F32, 4) && is(w, EB_F32, 4) && w->data && is(w1, EB_F32, 2) && w1->data, "needs f32 input, w3 and w1");
      int64_t ic = x->dims[3], oc = w->dims[0];
      REQ(p->part >= 1 && ic % p->part == 0 && w->dims[3] == ic / p->part && w1->dims[0] == oc &&
              w1->dims[1] == ic - ic / p->part,
          "part %d with %lld channels needs w3 [O,kh,kw,%lld] and w1 [O,%lld]", p->part, (long long)ic,
          (long long)(ic / (p->part ? p->part : 1)), (long long)(ic - ic / (p->part ? p->part : 1)));
      REQ(w->dims[1] % 2 == 1 && w->dims[2] % 2 == 1, "kernel must have odd size");
      REQ(y->dtype == EB_F32, "output must be f32");
      REQ(!input(m, nd, 3) || is_vec(input(m, nd, 3), EB_F32, oc), "bias must be a constant f32 vector");
      return window(err, nd, x, y, (int)w->dims[1], (int)w->dims[2], (int)oc, &g);
    }
    case EB_OP_BCONV2D: {
      if ((st = check_arity(err, nd, 2, 6))) return st;
      REQ(is(x, EB_BIT1, 4) && is(w, EB_BIT1, 4) && w->data, "needs bit1 NHWC input and constant bit1 [O,kh,kw,C/groups] weights");
      REQ(p->groups >= 1 && w->dims[3] * p->groups == x->dims[3] && w->dims[0] % p->groups == 0,
          "groups=%d does not fit %lld input channels, %lld filters and weights for %lld channels per group", p->groups,
          (long long)x->dims[3], (long long)w->dims[0], (long long)w->dims[3]);
      REQ(p->pad_value == 0 || p->pad_value == 1, "pad_value must be 0 or 1");
      REQ(w->dims[1] * w->dims[2] * w->dims[3] < INT32_MAX, "accumulator would overflow int32");
      if ((st = check_binary_epilogue(m, err, nd, y, w->dims[0]))) return st;
      if ((st = window(err, nd, x, y, (int)w->dims[1], (int)w->dims[2], (int)w->dims[0], &g))) return st;
      return set_scratch(err, nd, acc_bytes64(y, 1));
    }
    case EB_OP_BFULLY_CONNECTED: {
      if ((st = check_arity(err, nd, 2, 6))) return st;
      REQ(is(x, EB_BIT1, 2) && is(w, EB_BIT1, 2) && w->data && w->dims[1] == x->dims[1],
          "needs bit1 [N,K] input and constant bit1 [O,K] weights with matching K");
      REQ(y->ndim == 2 && y->dims[0] == x->dims[0] && y->dims[1] == w->dims[0], "output must be [N,O]");
      if ((st = check_binary_epilogue(m, err, nd, y, w->dims[0]))) return st;
      return set_scratch(err, nd, acc_bytes64(y, 1));
    }
    case EB_OP_KBIT_CONV2D:
    case EB_OP_HORQ_CONV2D: {
      if ((st = check_arity(err, nd, 2, 4))) return st;
      REQ(is(x, EB_F32, 4) && is(w, EB_BIT1, 4) && w->data && w->dims[3] == x->dims[3],
          "needs f32 NHWC input and constant bit1 [O,kh,kw,C] weights with matching C");
      REQ(y->dtype == EB_F32, "output must be f32");
      int64_t oc = w->dims[0];
      REQ(!input(m, nd, 2) || is_vec(input(m, nd, 2), EB_F32, oc), "multiplier must be a constant f32 vector");
      REQ(!input(m, nd, 3) || is_vec(input(m, nd, 3), EB_F32, oc), "bias must be a constant f32 vector");
      REQ(w->dims[1] * w->dims[2] * w->dims[3] < (INT32_MAX >> 8), "accumulator would overflow int32");
      if ((st = window(err, nd, x, y, (int)w->dims[1], (int)w->dims[2], (int)oc, &g))) return st;
      if (nd->type == EB_OP_KBIT_CONV2D) {
        REQ(p->bits >= 1 && p->bits <= 8 && isfinite(p->step) && p->step > 0, "needs 1 <= bits <= 8 and step > 0");
        /* eb_ref_kbit_scratch, in 64 bits: [n][ih][iw][bits][words(ic)] uint64 planes */
        uint64_t planes = (uint64_t)g.n * (uint64_t)g.ih * (uint64_t)g.iw * (uint64_t)p->bits *
                          eb_words((size_t)g.ic) * sizeof(uint64_t);
        return set_scratch(err, nd, acc_bytes64(y, 1) + EB_ARENA_ALIGN + planes);
      } else {
        REQ(p->order >= 1 && p->order <= 8, "needs 1 <= order <= 8");
        uint64_t pix = (uint64_t)g.n * (uint64_t)g.oh * (uint64_t)g.ow;
        /* eb_bin_horq_scratch, in 64 bits: sign planes and residual of one patch per
         * tile slot (eb_ref_horq_scratch each, 64-byte aligned) */
        uint64_t taps = (uint64_t)g.kh * (uint64_t)g.kw;
        uint64_t one = (uint64_t)p->order * taps * eb_words((size_t)g.ic) * sizeof(uint64_t) +
                       taps * (uint64_t)g.ic * sizeof(float);
        uint64_t patch = EB_HORQ_SLOTS * ((one + EB_ARENA_ALIGN - 1) / EB_ARENA_ALIGN * EB_ARENA_ALIGN);
        return set_scratch(err, nd, acc_bytes64(y, p->order) + EB_ARENA_ALIGN + pix * (uint64_t)p->order * sizeof(float) +
                                        EB_ARENA_ALIGN + patch);
      }
    }
    case EB_OP_SIGN_PACK:
      if ((st = check_arity(err, nd, 1, 2))) return st;
      REQ((is(x, EB_F32, -1) || is_q8(x)) && y->dtype == EB_BIT1 && same_shape(x, y),
          "needs an f32 or per-tensor int8 input and a bit1 output of the same shape");
      REQ(!input(m, nd, 1) || is_vec(input(m, nd, 1), EB_F32, x->dims[x->ndim - 1]), "thresholds must be a constant f32 vector");
      /* int8 codes are widened to float for the fast pack kernels */
      return x->dtype == EB_I8 ? set_scratch(err, nd, (uint64_t)x->count * sizeof(float)) : EB_OK;
    case EB_OP_UNPACK:
      if ((st = check_arity(err, nd, 1, 1))) return st;
      REQ(is(x, EB_BIT1, -1) && y->dtype == EB_F32 && same_shape(x, y), "needs bit1 input and f32 output of the same shape");
      return EB_OK;
    case EB_OP_MAX_POOL2D:
    case EB_OP_AVG_POOL2D:
    case EB_OP_BMAX_POOL2D: {
      if ((st = check_arity(err, nd, 1, 1))) return st;
      eb_dtype dt = nd->type == EB_OP_BMAX_POOL2D ? EB_BIT1 : EB_F32;
      REQ(p->rounding == 0 || p->rounding == 1, "rounding must be 0 (half away from zero) or 1 (half up)");
      if (x && x->dtype == EB_I8 && nd->type != EB_OP_BMAX_POOL2D) {
        dt = EB_I8;
        REQ(is_q8(x) && is_q8(y) && x->scale == y->scale && x->zero_point == y->zero_point,
            "int8 pooling needs int8 input and output with one per-tensor scale and zero point");
      }
      REQ(is(x, dt, 4) && y->dtype == dt, "needs %s NHWC input and output", eb_dtype_name(dt));
      REQ(p->dilations[0] == 1 && p->dilations[1] == 1, "pooling has no dilation");
      return window(err, nd, x, y, p->kernel[0], p->kernel[1], (int)x->dims[3], &g);
    }
    case EB_OP_GLOBAL_AVG_POOL:
      if ((st = check_arity(err, nd, 1, 1))) return st;
      if (x && x->dtype == EB_I8) {
        REQ(is_q8(x) && is_q8(y) && x->ndim == 4 && y->ndim == 4 && y->dims[0] == x->dims[0] && y->dims[1] == 1 &&
                y->dims[2] == 1 && y->dims[3] == x->dims[3],
            "needs int8 [N,H,W,C] input and int8 [N,1,1,C] output with per-tensor scales");
        REQ(x->dims[1] * x->dims[2] <= INT32_MAX / 256, "window too large for the int32 accumulator");
        return EB_OK;
      }
      REQ(is(x, EB_F32, 4) && is(y, EB_F32, 4) && y->dims[0] == x->dims[0] && y->dims[1] == 1 && y->dims[2] == 1 &&
              y->dims[3] == x->dims[3],
          "needs f32 [N,H,W,C] input and [N,1,1,C] output");
      return EB_OK;
    case EB_OP_ADD:
      if ((st = check_arity(err, nd, 2, 2))) return st;
      if (x && x->dtype == EB_I8) {
        REQ(is_q8(x) && is_q8(w) && is_q8(y) && same_shape(x, w) && same_shape(x, y),
            "needs two int8 inputs and an int8 output of one shape, each with a per-tensor scale");
        return EB_OK;
      }
      REQ(is(x, EB_F32, -1) && is(w, EB_F32, -1) && same_shape(x, w) && y->dtype == EB_F32 && same_shape(x, y),
          "needs two f32 inputs and an output of one shape");
      return EB_OK;
    case EB_OP_CONCAT: {
      if ((st = check_arity(err, nd, 1, EB_MAX_OP_INPUTS))) return st;
      int ax = p->axis;
      REQ(ax >= 0 && ax < y->ndim, "axis %d out of range", ax);
      REQ(x->dtype == y->dtype, "inputs and output must share a dtype");
      REQ(y->dtype != EB_BIT1 || ax == y->ndim - 1, "bit1 concat only along the last axis");
      int64_t sum = 0;
      for (int i = 0; i < nd->n_in; i++) {
        const eb_tensor *t = input(m, nd, i);
        REQ(t && t->dtype == y->dtype && t->ndim == y->ndim, "input %d missing or of another dtype/rank", i);
        for (int d = 0; d < y->ndim; d++) REQ(d == ax || t->dims[d] == y->dims[d], "input %d disagrees on dim %d", i, d);
        sum += t->dims[ax];
      }
      REQ(sum == y->dims[ax], "output dim %d must be %lld", ax, (long long)sum);
      return EB_OK;
    }
    case EB_OP_RELU:
    case EB_OP_RELU6:
    case EB_OP_HARDTANH:
    case EB_OP_SOFTMAX:
      if ((st = check_arity(err, nd, 1, 1))) return st;
      REQ(is(x, EB_F32, -1) && y->dtype == EB_F32 && same_shape(x, y), "needs f32 input and output of one shape");
      REQ(nd->type != EB_OP_HARDTANH || p->clamp[0] <= p->clamp[1], "clamp min must be <= max");
      return EB_OK;
    case EB_OP_ABS:
      if ((st = check_arity(err, nd, 1, 1))) return st;
      REQ(is(x, EB_F32, -1) && y->dtype == EB_F32 && same_shape(x, y), "needs f32 input and output of one shape");
      return EB_OK;
    case EB_OP_CHANNEL_MEAN: {
      if ((st = check_arity(err, nd, 1, 1))) return st;
      REQ(is(x, EB_F32, -1) && y->dtype == EB_F32 && y->ndim == x->ndim && y->dims[y->ndim - 1] == 1,
          "needs an f32 input and an f32 output whose last dim is 1");
      for (int d = 0; d < x->ndim - 1; d++) REQ(y->dims[d] == x->dims[d], "output must keep dim %d", d);
      return EB_OK;
    }
    case EB_OP_MUL: {
      if ((st = check_arity(err, nd, 2, 2))) return st;
      REQ(is(x, EB_F32, -1) && is(w, EB_F32, -1) && y->dtype == EB_F32 && same_shape(x, y) && w->ndim == x->ndim,
          "needs two f32 inputs of one rank and an output shaped like the first");
      for (int d = 0; d < x->ndim - 1; d++) REQ(w->dims[d] == x->dims[d], "second input must match dim %d", d);
      REQ(w->dims[x->ndim - 1] == x->dims[x->ndim - 1] || w->dims[x->ndim - 1] == 1,
          "second input's last dim must equal the first's or be 1 (one scale per position)");
      return EB_OK;
    }
    case EB_OP_PRELU:
      if ((st = check_arity(err, nd, 2, 2))) return st;
      REQ(is(x, EB_F32, -1) && y->dtype == EB_F32 && same_shape(x, y), "needs f32 input and output of one shape");
      REQ(is_vec(w, EB_F32, x->dims[x->ndim - 1]), "slope must be a constant f32 vector over the last axis");
      return EB_OK;
    case EB_OP_AFFINE:
      if ((st = check_arity(err, nd, 3, 3))) return st;
      REQ(is(x, EB_F32, -1) && y->dtype == EB_F32 && same_shape(x, y), "needs f32 input and output of one shape");
      REQ(is_vec(w, EB_F32, x->dims[x->ndim - 1]) && is_vec(input(m, nd, 2), EB_F32, x->dims[x->ndim - 1]),
          "scale and bias must be constant f32 vectors over the last axis");
      return EB_OK;
    case EB_OP_RESHAPE:
      if ((st = check_arity(err, nd, 1, 1))) return st;
      REQ(x->dtype == y->dtype && x->count == y->count, "output must keep the dtype and the element count");
      return EB_OK;
    case EB_OP_TRANSPOSE: {
      if ((st = check_arity(err, nd, 1, 1))) return st;
      REQ(x->dtype != EB_BIT1 && x->dtype == y->dtype && x->ndim == y->ndim, "needs a non-bit1 input and output of one rank");
      int seen = 0;
      for (int d = 0; d < x->ndim; d++) {
        int q = p->perm[d];
        REQ(q >= 0 && q < x->ndim && !(seen & (1 << q)), "perm is not a permutation of %d axes", x->ndim);
        seen |= 1 << q;
        REQ(y->dims[d] == x->dims[q], "output dim %d must be %lld", d, (long long)x->dims[q]);
      }
      return EB_OK;
    }
    case EB_OP_CHANNEL_SHUFFLE:
      if ((st = check_arity(err, nd, 1, 1))) return st;
      REQ(x->dtype != EB_BIT1 && x->dtype == y->dtype && same_shape(x, y), "needs a non-bit1 input and output of one shape");
      REQ(p->groups >= 1 && x->dims[x->ndim - 1] % p->groups == 0, "%d groups do not divide the channels", p->groups);
      return EB_OK;
    case EB_OP_QUANTIZE:
      if ((st = check_arity(err, nd, 1, 1))) return st;
      REQ(is(x, EB_F32, -1) && y->dtype == EB_I8 && same_shape(x, y) && y->quant_kind == EBF_QUANT_TENSOR,
          "needs f32 input and a per-tensor quantized i8 output of the same shape");
      return EB_OK;
    case EB_OP_DEQUANTIZE:
      if ((st = check_arity(err, nd, 1, 1))) return st;
      REQ(is(x, EB_I8, -1) && x->quant_kind != EBF_QUANT_NONE && y->dtype == EB_F32 && same_shape(x, y),
          "needs a quantized i8 input and f32 output of the same shape");
      return EB_OK;
  }
  return eb_fail(err, EB_ERR_UNSUPPORTED, "op '%s': op code %d is not supported", nd->name, nd->type);
}

/* ---- run ----------------------------------------------------------------------- */

static eb_conv_geom geom_of(const eb_model *m, const eb_node *nd) {
  const eb_tensor *x = &m->tensors[nd->in[0]], *y = &m->tensors[nd->out];
  const eb_params *p = &nd->p;
  int kh = p->kernel[0], kw = p->kernel[1];
  if (nd->type != EB_OP_MAX_POOL2D && nd->type != EB_OP_AVG_POOL2D && nd->type != EB_OP_BMAX_POOL2D) {
    const eb_tensor *w = &m->tensors[nd->in[1]];
    if (nd->type == EB_OP_DEPTHWISE_CONV2D) { kh = (int)w->dims[0]; kw = (int)w->dims[1]; }
    else { kh = (int)w->dims[1]; kw = (int)w->dims[2]; }
  }
  return (eb_conv_geom){(int)x->dims[0], (int)x->dims[1], (int)x->dims[2], (int)x->dims[3], (int)y->dims[1],
                        (int)y->dims[2], (int)y->dims[3], kh, kw, p->strides[0], p->strides[1], p->dilations[0],
                        p->dilations[1], p->pads[0], p->pads[1], p->groups};
}

static size_t rows_of(const eb_tensor *t) { return t->count / (size_t)t->dims[t->ndim - 1]; }

/* Bit-level copy for BIT1 reshapes and concats, where rows are padded to whole words. */
static int get_bit(const uint64_t *w, size_t row_words, size_t row, size_t col) {
  return (int)((w[row * row_words + col / 64] >> (col % 64)) & 1u);
}

static void reshape_bits(const eb_tensor *x, const eb_tensor *y, const uint64_t *src, uint64_t *dst) {
  size_t cx = (size_t)x->dims[x->ndim - 1], cy = (size_t)y->dims[y->ndim - 1];
  size_t wx = eb_words(cx), wy = eb_words(cy);
  if (cx % 64 == 0) {
    /* x's rows fill whole words, so its bits are one dense stream: each row of y is the run
     * of cy bits from bit r * cy on, copied a word at a time (a flatten before a binary FC,
     * which bit by bit cost more than the FC itself) */
    const size_t nwords = x->count / 64;
    for (size_t r = 0; r < x->count / cy; r++)
      for (size_t w = 0; w < wy; w++) {
        const size_t b = r * cy + 64 * w, q = b / 64, sh = b % 64, left = cy - 64 * w;
        uint64_t v = src[q] >> sh;
        if (sh && q + 1 < nwords) v |= src[q + 1] << (64 - sh);
        dst[r * wy + w] = left < 64 ? v & (((uint64_t)1 << left) - 1) : v;
      }
    return;
  }
  memset(dst, 0, y->nbytes);
  /* bit by bit, the output position stepped rather than divided per bit */
  size_t ry = 0, cyi = 0;
  for (size_t r = 0; r < x->count / cx; r++)
    for (size_t c = 0; c < cx; c++) {
      if (get_bit(src, wx, r, c)) dst[ry * wy + cyi / 64] |= (uint64_t)1 << (cyi % 64);
      if (++cyi == cy) cyi = 0, ry++;
    }
}

#define PTR(i) (nd->in[i] >= 0 ? s->ptr[nd->in[i]] : NULL)
/* this node's prepacked binary weights (NULL with the ref variant) */
#define BPACKED (s->bpacked ? s->bpacked[nd - m->nodes] : NULL)
#define PTR_OR_NULL(s, nd, i) ((i) < (nd)->n_in && (nd)->in[i] >= 0 ? (s)->ptr[(nd)->in[i]] : NULL)

typedef struct {
  const eb_conv_geom *g;
  const eb_node *nd;
  const eb_session *s;
  const float *packed;
} hetconv_task;

static void hetconv_rows(void *ctx, size_t r) {
  const hetconv_task *t = ctx;
  const eb_node *nd = t->nd;
  eb_hetconv_rows(t->g, nd->p.part, t->s->ptr[nd->in[0]], t->packed, t->s->zero_row, nd->p.out_min, nd->p.out_max,
                  t->s->ptr[nd->out], r, r + 1);
}

/* int8 layers on the reference kernels; returns 0 for ops that are not int8 layers
 * (QUANTIZE/DEQUANTIZE, data movement), which the float switch handles. */
static int run_q8(const eb_session *s, const eb_node *nd, uint8_t *scratch) {
  const eb_model *m = s->model;
  const eb_tensor *x = &m->tensors[nd->in[0]], *y = &m->tensors[nd->out];
  const eb_params *p = &nd->p;
  const eb_q8_io q = q8_io(x, y, p);
  void *out = s->ptr[nd->out];
  switch (nd->type) {
    case EB_OP_CONV2D:
    case EB_OP_DEPTHWISE_CONV2D:
    case EB_OP_FULLY_CONNECTED: {
      const eb_tensor *w = &m->tensors[nd->in[1]];
      const int oc = (int)y->dims[y->ndim - 1];
      int32_t *mult = (int32_t *)scratch;
      int *shift = (int *)(scratch + (size_t)oc * sizeof(int32_t)), per_channel;
      const float *ws = w_scales(m, w, &per_channel);
      eb_q8_channel_multipliers(oc, x->scale, ws, per_channel, y->scale, mult, shift);
      eb_q8_io qw = q;
      qw.w_zp = per_channel ? 0 : w->zero_point;
      if (nd->type == EB_OP_FULLY_CONNECTED) {
        eb_ref_fc_i8((int)x->dims[0], (int)x->dims[1], oc, PTR(0), PTR(1), PTR_OR_NULL(s, nd, 2), mult, shift, &qw, out);
      } else {
        eb_conv_geom g = geom_of(m, nd);
        if (nd->type == EB_OP_CONV2D) eb_ref_conv2d_i8(&g, PTR(0), PTR(1), PTR_OR_NULL(s, nd, 2), mult, shift, &qw, out);
        else eb_ref_dwconv2d_i8(&g, PTR(0), PTR(1), PTR_OR_NULL(s, nd, 2), mult, shift, &qw, out);
      }
      return 1;
    }
    case EB_OP_MAX_POOL2D:
    case EB_OP_AVG_POOL2D: {
      eb_conv_geom g = geom_of(m, nd);
      if (nd->type == EB_OP_MAX_POOL2D) eb_ref_maxpool_i8(&g, &q, PTR(0), out);
      else eb_ref_avgpool_i8(&g, p->count_include_pad, p->rounding, &q, PTR(0), out);
      return 1;
    }
    case EB_OP_GLOBAL_AVG_POOL:
      /* as QUANTIZE: the q8 build writes the reference's bytes, EDGEBNN_KERNELS=ref keeps the oracle */
      (eb_q8_enabled() ? eb_q8_global_avgpool_portable : eb_ref_global_avgpool_i8)(
          (int)x->dims[0], (int)(x->dims[1] * x->dims[2]), (int)x->dims[3], PTR(0), x->scale, y->scale, &q, out);
      return 1;
    case EB_OP_ADD: {
      const eb_tensor *b = &m->tensors[nd->in[1]];
      eb_ref_add_i8(x->count, PTR(0), x->scale, x->zero_point, PTR(1), b->scale, b->zero_point, y->scale, &q, out);
      return 1;
    }
    case EB_OP_SIGN_PACK: {
      const float *thr = PTR_OR_NULL(s, nd, 1);
      if (nd->backend != EB_BACKEND_BINARY) {
        eb_ref_pack_i8(rows_of(x), (int)x->dims[x->ndim - 1], PTR(0), thr, x->zero_point, out);
        return 1;
      }
      /* every code is exact in float: compare q against the thresholds, or q - zp against 0 */
      const int8_t *xq = PTR(0);
      float *xf = (float *)scratch;
      const float off = thr ? 0.0f : (float)x->zero_point;
      for (size_t i = 0; i < x->count; i++) xf[i] = (float)xq[i] - off;
      eb_bin_pack(s->pool, s->bk, rows_of(x), (int)x->dims[x->ndim - 1], xf, thr, out);
      return 1;
    }
    default:
      return 0;
  }
}

eb_status eb_op_prepare(eb_session *s, const eb_node *nd, eb_error *err) {
  const eb_model *m = s->model;
  const int k = (int)(nd - m->nodes);
  if (nd->backend == EB_BACKEND_BAND) {
    eb_status st = eb_band_prepare(s, nd, &s->band[k], err);
    const eb_node *conv = &m->nodes[nd->band_conv];
    for (int i = 1; st == EB_OK && i <= 2 && i < conv->n_in; i++) /* XNNPACK packed copies, as below */
      if (conv->in[i] >= 0 && m->tensors[conv->in[i]].data)
        eb_model_drop_pages(m, m->tensors[conv->in[i]].data, m->tensors[conv->in[i]].nbytes);
    return st;
  }
  if (nd->skipped && nd->backend == EB_BACKEND_XNNPACK) return EB_OK; /* a banded conv: its pool runs it */
  if (nd->backend == EB_BACKEND_XNNPACK) {
    eb_status st = eb_xnn_create(s, nd, &s->xnn_op[k], err);
    /* XNNPACK packed its own copy: the file's pages go at once, so that the pages of every
     * layer's weights are never resident together while a session is made (session.c) */
    if (st == EB_OK && (nd->type == EB_OP_CONV2D || nd->type == EB_OP_DEPTHWISE_CONV2D ||
                        nd->type == EB_OP_FULLY_CONNECTED))
      for (int i = 1; i <= 2; i++)
        if (nd->in[i] >= 0 && m->tensors[nd->in[i]].data)
          eb_model_drop_pages(m, m->tensors[nd->in[i]].data, m->tensors[nd->in[i]].nbytes);
    return st;
  }
  if (nd->backend == EB_BACKEND_Q8) {
    const eb_q8_io q = q8_io(&m->tensors[nd->in[0]], &m->tensors[nd->out], &nd->p);
    return eb_q8_create(s, nd, &q, &s->q8op[k], err);
  }
  if (nd->backend == EB_BACKEND_HETCONV_FUSED) {
    eb_conv_geom g = geom_of(m, nd);
    const uint64_t floats = eb_hetconv_packed_floats(&g, nd->p.part);
    if (floats > (SIZE_MAX - EB_ARENA_ALIGN) / sizeof(float))
      return eb_fail(err, EB_ERR_NOMEM, "op '%s': packed weights would exceed this build's address space", nd->name);
    size_t bytes = (size_t)floats * sizeof(float);
    s->packed[k] = aligned_alloc(EB_ARENA_ALIGN, (bytes + EB_ARENA_ALIGN - 1) / EB_ARENA_ALIGN * EB_ARENA_ALIGN);
    if (!s->packed[k]) return eb_fail(err, EB_ERR_NOMEM, "op '%s': out of memory packing %zu weight bytes", nd->name, bytes);
    eb_hetconv_pack(&g, nd->p.part, s->ptr[nd->in[1]], s->ptr[nd->in[2]], PTR_OR_NULL(s, nd, 3), s->packed[k]);
  }
  return EB_OK;
}

/* An ADD with a binary conv fused in (fuse.c): the conv, its float epilogue, the
 * shortcut, and the SIGN_PACK of the sum when fused too, in one pass. */
static void run_fused_add(const eb_session *s, const eb_node *add) {
  const eb_model *m = s->model;
  const int k = add->fused_conv;
  const eb_node *nd = &m->nodes[k];
  const eb_tensor *x = &m->tensors[nd->in[0]], *y = &m->tensors[nd->out];
  const int r = add->fused_res;
  eb_bin_out o = {NULL, NULL, NULL, NULL, s->ptr[add->out], PTR(2), PTR(3), nd->p.out_min, nd->p.out_max,
                  s->ptr[r], add->p.out_min, add->p.out_max, NULL, NULL, 0, 0, 0, NULL, NULL, 0, 0};
  if (add->fused_clamp >= 0) {
    const eb_node *c = &m->nodes[add->fused_clamp];
    o.post |= EB_POST_CLAMP;
    o.clamp_lo = c->type == EB_OP_HARDTANH ? c->p.clamp[0] : 0.0f;
    o.clamp_hi = c->type == EB_OP_HARDTANH ? c->p.clamp[1] : c->type == EB_OP_RELU6 ? 6.0f : INFINITY;
  }
  if (add->fused_affine >= 0) {
    const eb_node *a = &m->nodes[add->fused_affine];
    o.post |= EB_POST_AFFINE;
    o.scale = PTR_OR_NULL(s, a, 1);
    o.shift = PTR_OR_NULL(s, a, 2);
    o.aff_lo = a->p.out_min;
    o.aff_hi = a->p.out_max;
  }
  if (add->fused_sign >= 0) {
    const eb_node *sp = &m->nodes[add->fused_sign];
    o.sbits = s->ptr[sp->out];
    o.sthr = PTR_OR_NULL(s, sp, 1);
  }
  const void *packed = s->bpacked ? s->bpacked[k] : NULL;
  if (nd->type == EB_OP_BCONV2D) {
    eb_conv_geom g = geom_of(m, nd);
    eb_bin_conv(s->pool, s->bk, &g, nd->p.pad_value, PTR(0), PTR(1), packed, &o);
  } else {
    eb_bin_fc(s->pool, s->bk, (int)x->dims[0], (int)x->dims[1], (int)y->dims[y->ndim - 1], PTR(0), PTR(1), packed, &o);
  }
}

void eb_op_run(const eb_session *s, const eb_node *nd) {
  const eb_model *m = s->model;
  const int node_ix = (int)(nd - m->nodes);
  if (nd->skipped) return;
  if (nd->fused_conv >= 0) {
    run_fused_add(s, nd);
    return;
  }
  if (nd->band_conv >= 0) {
    eb_band_run(s, nd, s->band[node_ix]);
    return;
  }
  if (s->xnn_op[node_ix]) {
    eb_xnn_run(s, s->xnn_op[node_ix]);
    return;
  }
  if (s->q8op[node_ix]) {
    eb_q8_run(s, nd, s->q8op[node_ix]);
    return;
  }
  const eb_tensor *x = &m->tensors[nd->in[0]], *y = &m->tensors[nd->out];
  const eb_params *p = &nd->p;
  void *out = s->ptr[nd->out];
  uint8_t *scratch = s->arena + nd->scratch_offset;
  if (x->dtype == EB_I8 && run_q8(s, nd, scratch)) return;
  switch (nd->type) {
    case EB_OP_CONV2D: {
      eb_conv_geom g = geom_of(m, nd);
      eb_ref_conv2d_f32(&g, PTR(0), PTR(1), PTR(2), p->out_min, p->out_max, out);
      break;
    }
    case EB_OP_DEPTHWISE_CONV2D: {
      eb_conv_geom g = geom_of(m, nd);
      eb_ref_dwconv2d_f32(&g, PTR(0), PTR(1), PTR(2), p->out_min, p->out_max, out);
      break;
    }
    case EB_OP_FULLY_CONNECTED: {
      const eb_tensor *w = &m->tensors[nd->in[1]];
      eb_ref_fc_f32((int)x->dims[0], (int)x->dims[1], (int)w->dims[0], PTR(0), PTR(1), PTR(2), p->out_min, p->out_max,
                    out);
      break;
    }
    case EB_OP_HETCONV2D: {
      eb_conv_geom g = geom_of(m, nd);
      if (s->packed[node_ix]) {
        hetconv_task t = {&g, nd, s, s->packed[node_ix]};
        eb_parallel_for(s->pool, (size_t)g.n * (size_t)g.oh, hetconv_rows, &t);
      } else {
        eb_ref_hetconv2d_f32(&g, p->part, PTR(0), PTR(1), PTR(2), PTR(3), p->out_min, p->out_max, out);
      }
      break;
    }
    case EB_OP_BCONV2D:
    case EB_OP_BFULLY_CONNECTED: {
      int oc = (int)y->dims[y->ndim - 1];
      /* the fast kernels write y directly; the acc scratch is ref's */
      eb_bin_out o = {(int32_t *)scratch, NULL, NULL, NULL, NULL, NULL, NULL, p->out_min, p->out_max, NULL, 0, 0, NULL, NULL, 0, 0, 0, NULL, NULL, 0, 0};
      if (y->dtype == EB_BIT1) {
        o.bits = out;
        o.thr = PTR(4);
        o.dir = PTR(5);
      } else {
        o.f32 = out;
        o.mult = PTR(2);
        o.bias = PTR(3);
      }
      if (nd->type == EB_OP_BCONV2D) {
        eb_conv_geom g = geom_of(m, nd);
        eb_bin_conv(s->pool, s->bk, &g, p->pad_value, PTR(0), PTR(1), BPACKED, &o);
      } else {
        eb_bin_fc(s->pool, s->bk, (int)x->dims[0], (int)x->dims[1], oc, PTR(0), PTR(1), BPACKED, &o);
      }
      break;
    }
    case EB_OP_KBIT_CONV2D: {
      eb_conv_geom g = geom_of(m, nd);
      int32_t *acc = (int32_t *)scratch;
      size_t off = (acc_bytes(y, 1) + EB_ARENA_ALIGN - 1) / EB_ARENA_ALIGN * EB_ARENA_ALIGN;
      eb_bin_out o = {acc, NULL, NULL, NULL, out, PTR(2), PTR(3), p->out_min, p->out_max, NULL, 0, 0, NULL, NULL, 0, 0, 0, NULL, NULL, 0, 0};
      eb_bin_kbit(s->pool, s->bk, &g, p->bits, p->step, PTR(0), PTR(1), BPACKED, &o, scratch + off);
      break;
    }
    case EB_OP_HORQ_CONV2D: {
      eb_conv_geom g = geom_of(m, nd);
      size_t pix = (size_t)g.n * g.oh * g.ow;
      int32_t *acc = (int32_t *)scratch;
      size_t off = (acc_bytes(y, p->order) + EB_ARENA_ALIGN - 1) / EB_ARENA_ALIGN * EB_ARENA_ALIGN;
      float *beta = (float *)(scratch + off);
      off += (pix * p->order * sizeof(float) + EB_ARENA_ALIGN - 1) / EB_ARENA_ALIGN * EB_ARENA_ALIGN;
      eb_bin_horq(s->pool, s->bk, &g, p->order, PTR(0), PTR(1), BPACKED, acc, beta, scratch + off);
      eb_ref_horq_to_f32(pix, p->order, g.oc, acc, beta, PTR(2), PTR(3), p->out_min, p->out_max, out);
      break;
    }
    case EB_OP_SIGN_PACK:
      eb_bin_pack(s->pool, s->bk, rows_of(x), (int)x->dims[x->ndim - 1], PTR(0), PTR(1), out);
      break;
    case EB_OP_UNPACK:
      eb_ref_unpack_f32(rows_of(x), (int)x->dims[x->ndim - 1], PTR(0), out);
      break;
    case EB_OP_MAX_POOL2D: {
      eb_conv_geom g = geom_of(m, nd);
      eb_ref_maxpool_f32(&g, PTR(0), out);
      break;
    }
    case EB_OP_AVG_POOL2D: {
      eb_conv_geom g = geom_of(m, nd);
      eb_ref_avgpool_f32(&g, p->count_include_pad, PTR(0), out);
      break;
    }
    case EB_OP_BMAX_POOL2D: {
      eb_conv_geom g = geom_of(m, nd);
      eb_bin_maxpool(s->pool, s->bk, &g, PTR(0), out);
      break;
    }
    case EB_OP_GLOBAL_AVG_POOL:
      eb_ref_global_avgpool_f32((int)x->dims[0], (int)(x->dims[1] * x->dims[2]), (int)x->dims[3], PTR(0), out);
      break;
    case EB_OP_ADD:
      eb_ref_add_f32(x->count, PTR(0), PTR(1), p->out_min, p->out_max, out);
      break;
    case EB_OP_CONCAT: {
      int ax = p->axis;
      if (y->dtype == EB_BIT1) {
        size_t rows = rows_of(y), cy = (size_t)y->dims[ax], wy = eb_words(cy), col = 0;
        uint64_t *dst = out;
        memset(dst, 0, y->nbytes);
        for (int i = 0; i < nd->n_in; i++) {
          const eb_tensor *t = &m->tensors[nd->in[i]];
          size_t c = (size_t)t->dims[ax], wt = eb_words(c);
          for (size_t r = 0; r < rows; r++)
            for (size_t j = 0; j < c; j++)
              if (get_bit(PTR(i), wt, r, j)) dst[r * wy + (col + j) / 64] |= (uint64_t)1 << ((col + j) % 64);
          col += c;
        }
        break;
      }
      size_t outer = 1, inner[EB_MAX_OP_INPUTS];
      const void *xs[EB_MAX_OP_INPUTS];
      for (int d = 0; d < ax; d++) outer *= (size_t)y->dims[d];
      for (int i = 0; i < nd->n_in; i++) {
        const eb_tensor *t = &m->tensors[nd->in[i]];
        inner[i] = t->nbytes / outer;
        xs[i] = PTR(i);
      }
      eb_ref_concat(nd->n_in, outer, inner, xs, out);
      break;
    }
    case EB_OP_RELU: eb_ref_clamp_f32(x->count, PTR(0), 0.0f, INFINITY, out); break;
    case EB_OP_RELU6: eb_ref_clamp_f32(x->count, PTR(0), 0.0f, 6.0f, out); break;
    case EB_OP_HARDTANH: eb_ref_clamp_f32(x->count, PTR(0), p->clamp[0], p->clamp[1], out); break;
    case EB_OP_PRELU: eb_ref_prelu_f32(rows_of(x), (int)x->dims[x->ndim - 1], PTR(0), PTR(1), out); break;
    case EB_OP_ABS: eb_ref_abs_f32(x->count, PTR(0), out); break;
    case EB_OP_CHANNEL_MEAN: eb_ref_channel_mean_f32(rows_of(x), (int)x->dims[x->ndim - 1], PTR(0), out); break;
    case EB_OP_MUL: {
      const eb_tensor *b = &m->tensors[nd->in[1]];
      eb_ref_mul_f32(rows_of(x), (int)x->dims[x->ndim - 1], PTR(0), PTR(1), (int)b->dims[b->ndim - 1] == 1, out);
      break;
    }
    case EB_OP_AFFINE:
      eb_ref_affine_f32(rows_of(x), (int)x->dims[x->ndim - 1], PTR(0), PTR(1), PTR(2), p->out_min, p->out_max, out);
      break;
    case EB_OP_SOFTMAX: eb_ref_softmax_f32(rows_of(x), (int)x->dims[x->ndim - 1], PTR(0), out); break;
    case EB_OP_RESHAPE:
      if (x->dtype == EB_BIT1) reshape_bits(x, y, PTR(0), out);
      else memcpy(out, s->ptr[nd->in[0]], x->nbytes);
      break;
    case EB_OP_TRANSPOSE: {
      uint32_t dims[EB_MAX_DIMS];
      for (int d = 0; d < x->ndim; d++) dims[d] = (uint32_t)x->dims[d];
      eb_ref_transpose(x->ndim, dims, p->perm, eb_dtype_size(x->dtype), PTR(0), out);
      break;
    }
    case EB_OP_CHANNEL_SHUFFLE:
      eb_ref_channel_shuffle(rows_of(x), (int)x->dims[x->ndim - 1], p->groups, eb_dtype_size(x->dtype), PTR(0), out);
      break;
    case EB_OP_QUANTIZE:
      /* the q8 variants write the reference's bytes; EDGEBNN_KERNELS=ref keeps the oracle itself */
      (eb_q8_enabled() ? eb_q8_best()->quantize : eb_ref_quantize_i8)(x->count, PTR(0), y->scale, y->zero_point, out);
      break;
    case EB_OP_DEQUANTIZE:
      if (x->quant_kind == EBF_QUANT_CHANNEL) {
        size_t outer = 1, inner = 1;
        for (int d = 0; d < x->quant_axis; d++) outer *= (size_t)x->dims[d];
        for (int d = x->quant_axis + 1; d < x->ndim; d++) inner *= (size_t)x->dims[d];
        eb_ref_dequantize_i8(outer, (int)x->dims[x->quant_axis], inner, PTR(0), m->tensors[x->scales_tensor].data,
                             x->zero_points_tensor == EBF_NONE ? NULL : m->tensors[x->zero_points_tensor].data, out);
      } else {
        eb_ref_dequantize_i8(1, 1, x->count, PTR(0), &x->scale, &x->zero_point, out);
      }
      break;
    default: break;
  }
}
