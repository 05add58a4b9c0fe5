#include "q8_ops.h"

#include <stdlib.h>
#include <string.h>

#include "q8/q8.h"

enum { Q8_GEMM, Q8_IM2COL, Q8_DW, Q8_ADD };

/* Rows per task: enough work to amortize a task, small enough to balance two threads
 * on the 7x7 layers of MobileNet-style networks. */
#define GEMM_ROWS 64
#define ADD_COUNT 4096

typedef struct {
  int kind;
  const eb_q8_kernels *ks;
  eb_q8_gemm gemm;
  eb_q8_dw dw;
  eb_q8_add add;
  eb_conv_geom g; /* im2col */
  size_t rows, x_stride;
  int32_t x_zp;   /* im2col's padding code */
  int own_im2col; /* the kernels build the im2col rows themselves (ks->conv) */
  int8_t *cols;   /* im2col rows [rows][k] */
  void *mem;      /* one allocation holding everything above */
  /* per run */
  const int8_t *x, *b;
  int8_t *y;
} q8_op;

/* Which backend runs int8 by default. q8 is exact (TFLite's fixed-point requantization) and,
 * with AVX512-VNNI, as fast as XNNPACK; its portable build is about 12x slower than that, and
 * its NEON build has not been timed on a board yet. So where the best variant is not marked
 * default_over_xnnpack (non-VNNI x86, ARM) and XNNPACK is there, int8 goes to XNNPACK, which
 * requantizes in float: a step or a few off TFLite on some outputs. EDGEBNN_Q8=1 (or a kernel
 * name: q8-neon, q8-portable) asks for exactness anywhere; EDGEBNN_Q8=0 for XNNPACK. */
int eb_q8_enabled(void) {
  const char *k = getenv("EDGEBNN_KERNELS"), *q = getenv("EDGEBNN_Q8");
  if (k && !strcmp(k, "ref")) return 0;
  if (q && q[0]) return q[0] != '0';
#if defined(EB_HAVE_XNNPACK)
  const char *x = getenv("EDGEBNN_XNNPACK");
  if (!(x && x[0] == '0') && !eb_q8_best()->default_over_xnnpack) return 0;
#endif
  return 1;
}

static const eb_tensor *T(const eb_model *m, const eb_node *nd, int i) {
  return i < nd->n_in && nd->in[i] >= 0 ? &m->tensors[nd->in[i]] : NULL;
}

int eb_q8_supports(const eb_model *m, const eb_node *nd) {
  const eb_tensor *x = T(m, nd, 0), *y = &m->tensors[nd->out];
  if (!eb_q8_enabled() || !x || x->dtype != EB_I8) return 0;
  switch (nd->type) {
    case EB_OP_CONV2D: return nd->p.groups == 1;
    case EB_OP_DEPTHWISE_CONV2D: return y->dims[3] == x->dims[3];
    case EB_OP_FULLY_CONNECTED:
    case EB_OP_ADD: return 1;
    default: return 0;
  }
}

const char *eb_q8_backend_name(void) { return eb_q8_best()->name; }

static size_t up(size_t v) { return (v + EB_ARENA_ALIGN - 1) / EB_ARENA_ALIGN * EB_ARENA_ALIGN; }

eb_status eb_q8_create(const eb_session *s, const eb_node *nd, const eb_q8_io *q, void **out, eb_error *err) {
  const eb_model *m = s->model;
  const eb_tensor *x = T(m, nd, 0), *w = T(m, nd, 1), *bt = T(m, nd, 2), *y = &m->tensors[nd->out];
  const eb_params *p = &nd->p;
  *out = NULL;
  q8_op *op = calloc(1, sizeof *op);
  if (!op) return eb_fail(err, EB_ERR_NOMEM, "op '%s': out of memory", nd->name);
  op->ks = eb_q8_best();
  if (nd->type == EB_OP_ADD) {
    op->kind = Q8_ADD;
    eb_q8_add_init(&op->add, x->scale, x->zero_point, w->scale, w->zero_point, y->scale, q);
    *out = op;
    return EB_OK;
  }
  const int oc = (int)y->dims[y->ndim - 1], ocp = (oc + EB_Q8_BLOCK - 1) / EB_Q8_BLOCK * EB_Q8_BLOCK;
  const int per_channel = w->quant_kind == EBF_QUANT_CHANNEL;
  const float *ws = per_channel ? m->tensors[w->scales_tensor].data : &w->scale;
  const int32_t w_zp = per_channel ? 0 : w->zero_point;
  const int32_t *bias = bt ? bt->data : NULL;
  int kh = 1, kw = 1, taps;
  if (nd->type == EB_OP_DEPTHWISE_CONV2D) kh = (int)w->dims[0], kw = (int)w->dims[1];
  else if (nd->type == EB_OP_CONV2D) kh = (int)w->dims[1], kw = (int)w->dims[2];
  eb_conv_geom g = {0};
  if (nd->type != EB_OP_FULLY_CONNECTED)
    g = (eb_conv_geom){(int)x->dims[0], (int)x->dims[1], (int)x->dims[2], (int)x->dims[3], (int)y->dims[1],
                       (int)y->dims[2], oc, kh, kw, p->strides[0], p->strides[1], p->dilations[0], p->dilations[1],
                       p->pads[0], p->pads[1], 1};
  taps = nd->type == EB_OP_DEPTHWISE_CONV2D ? kh * kw : nd->type == EB_OP_FULLY_CONNECTED ? (int)x->dims[1]
                                                                                          : kh * kw * g.ic;
  /* one block: multipliers (3 x ocp), then colterm or dw bias (ocp), then weights, then im2col rows
   * or dw bias_in, then the one-shift requantization table, then the packed dw weights (AVX-512's
   * pairs, then NEON's int16) */
  const int pointwise = nd->type == EB_OP_CONV2D && kh == 1 && kw == 1 && g.sh == 1 && g.sw == 1 && !p->pads[0] &&
                        !p->pads[1] && !p->pads[2] && !p->pads[3];
  op->kind = nd->type == EB_OP_DEPTHWISE_CONV2D ? Q8_DW
             : (nd->type == EB_OP_FULLY_CONNECTED || pointwise) ? Q8_GEMM : Q8_IM2COL;
  op->rows = nd->type == EB_OP_FULLY_CONNECTED ? (size_t)x->dims[0] : (size_t)g.n * g.oh * g.ow;
  const size_t vec = up((size_t)ocp * sizeof(int32_t));
  const size_t wbytes = op->kind == Q8_DW ? up((size_t)taps * ocp * sizeof(int32_t)) : up(eb_q8_packed_bytes(taps, oc));
  /* im2col rows, unless the kernels build them themselves (conv) */
  op->own_im2col = op->kind == Q8_IM2COL && op->ks->conv && taps <= EB_Q8_CONV_MAX_K;
  const size_t cbytes = op->kind == Q8_IM2COL && !op->own_im2col ? up(op->rows * (size_t)taps)
                        : op->kind == Q8_DW                  ? vec
                                                             : 0;
  /* each SIMD depthwise reads its own copy of the weights: AVX-512 the tap pairs with biases and
   * requantization (pk), NEON int16 weights (w16); the portable kernel neither */
  const int dw_pk = op->kind == Q8_DW && op->ks->isa == 2, dw_w16 = op->kind == Q8_DW && op->ks->isa == 1;
  const size_t fbytes = up(eb_q8_fast_bytes(ocp)), pbytes = dw_pk ? up(eb_q8_dw_pack_bytes(kh, kw, oc)) : 0;
  const size_t hbytes = dw_w16 ? up((size_t)taps * ocp * sizeof(int16_t)) : 0;
  if (op->kind == Q8_IM2COL && !op->own_im2col && cbytes / (size_t)taps < op->rows) {
    free(op);
    return eb_fail(err, EB_ERR_NOMEM, "op '%s': im2col rows would exceed this build's address space", nd->name);
  }
  uint8_t *mem = op->mem = aligned_alloc(EB_ARENA_ALIGN, 4 * vec + wbytes + cbytes + fbytes + pbytes + hbytes + EB_ARENA_ALIGN);
  int32_t *q8m = malloc(sizeof(int32_t) * (size_t)oc);
  int *q8s = malloc(sizeof(int) * (size_t)oc);
  if (!mem || !q8m || !q8s) {
    free(op->mem), free(q8m), free(q8s), free(op);
    return eb_fail(err, EB_ERR_NOMEM, "op '%s': out of memory packing int8 weights", nd->name);
  }
  int32_t *mult = (int32_t *)mem, *lsh = (int32_t *)(mem + vec), *rsh = (int32_t *)(mem + 2 * vec),
          *col = (int32_t *)(mem + 3 * vec);
  void *wp = mem + 4 * vec;
  eb_q8_channel_multipliers(oc, x->scale, ws, per_channel, y->scale, q8m, q8s);
  eb_q8_fill_requant(oc, ocp, q8m, q8s, mult, lsh, rsh);
  free(q8m), free(q8s);
  int64_t *fast = (int64_t *)(mem + 4 * vec + wbytes + cbytes);
  const eb_q8_requant rq = {mult, lsh, rsh, q->out_zp, q->act_min, q->act_max,
                            fast};
  eb_q8_fill_fast(ocp, mult, rsh, fast);
  const int8_t *wd = w->data;
  if (op->kind == Q8_DW) {
    int32_t *wq = wp;
    memset(wq, 0, wbytes);
    for (int t = 0; t < taps; t++)
      for (int c = 0; c < oc; c++) wq[(size_t)t * ocp + c] = (int32_t)wd[(size_t)t * oc + c] - w_zp;
    int32_t *bias_in = (int32_t *)(mem + 4 * vec + wbytes);
    eb_q8_dw_biases(taps, oc, ocp, wq, bias, x->zero_point, col, bias_in);
    void *pk = dw_pk ? mem + 4 * vec + wbytes + cbytes + fbytes : NULL;
    if (pk) eb_q8_dw_pack(kh, kw, oc, ocp, wq, bias_in, mult, lsh, rsh, pk);
    int16_t *w16 = dw_w16 ? (int16_t *)(mem + 4 * vec + wbytes + cbytes + fbytes + pbytes) : NULL;
    if (w16)
      for (size_t i = 0; i < (size_t)taps * ocp; i++) w16[i] = (int16_t)wq[i]; /* w - w_zp fits int16 */
    op->dw = (eb_q8_dw){g, ocp, wq, col, bias_in, x->zero_point, rq, pk, w16};
  } else {
    /* conv weights [oc][kh][kw][ic] are already the rows of im2col's order */
    const int32_t rowcoef = eb_q8_pack_gemm(op->ks, taps, oc, wd, w_zp, bias, x->zero_point, wp, col);
    op->gemm = (eb_q8_gemm){taps, oc, ocp, wp, col, rowcoef, rq, eb_q8_w_no_min(wd, (size_t)oc * taps)};
    op->g = g;
    op->x_zp = x->zero_point;
    op->x_stride = op->kind == Q8_IM2COL ? (size_t)taps : (size_t)x->dims[x->ndim - 1];
    if (op->kind == Q8_IM2COL && !op->own_im2col) op->cols = (int8_t *)(mem + 4 * vec + wbytes);
  }
  *out = op;
  return EB_OK;
}

static void gemm_task(void *ctx, size_t i) {
  const q8_op *op = ctx;
  const size_t r0 = i * GEMM_ROWS, r1 = r0 + GEMM_ROWS < op->rows ? r0 + GEMM_ROWS : op->rows;
  const size_t ys = (size_t)op->gemm.oc;
  const int8_t *x = op->x + r0 * op->x_stride;
  if (op->own_im2col) {
    op->ks->conv(&op->gemm, &op->g, op->x, op->x_zp, r0, r1, op->y + r0 * ys);
    return;
  }
  if (op->kind == Q8_IM2COL) {
    eb_q8_im2col(&op->g, op->x, op->x_zp, r0, r1, op->cols + r0 * op->x_stride, op->x_stride, 0);
    x = op->cols + r0 * op->x_stride;
  }
  op->ks->gemm(&op->gemm, r1 - r0, x, op->x_stride, op->y + r0 * ys, ys);
}

static void dw_task(void *ctx, size_t i) {
  const q8_op *op = ctx;
  op->ks->dw_rows(&op->dw, op->x, op->y, (int)i, (int)i + 1);
}

static void add_task(void *ctx, size_t i) {
  const q8_op *op = ctx;
  const size_t n = (size_t)op->rows, c0 = i * ADD_COUNT, c1 = c0 + ADD_COUNT < n ? c0 + ADD_COUNT : n;
  op->ks->add(&op->add, c1 - c0, op->x + c0, op->b + c0, op->y + c0);
}

void eb_q8_run(const eb_session *s, const eb_node *nd, void *opaque) {
  q8_op *op = opaque;
  /* the arena never moves, but the pointers are per session: set them on each run */
  op->x = s->ptr[nd->in[0]];
  op->y = s->ptr[nd->out];
  switch (op->kind) {
    case Q8_ADD:
      op->b = s->ptr[nd->in[1]];
      op->rows = s->model->tensors[nd->out].count;
      eb_parallel_for(s->pool, (op->rows + ADD_COUNT - 1) / ADD_COUNT, add_task, op);
      break;
    case Q8_DW:
      eb_parallel_for(s->pool, (size_t)op->dw.g.n * op->dw.g.oh, dw_task, op);
      break;
    default:
      eb_parallel_for(s->pool, (op->rows + GEMM_ROWS - 1) / GEMM_ROWS, gemm_task, op);
      break;
  }
}

void eb_q8_delete(void *opaque) {
  q8_op *op = opaque;
  if (!op) return;
  free(op->mem);
  free(op);
}
