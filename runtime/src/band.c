#include "band.h"

#include <stdlib.h>
#include <string.h>

#include "float/stem.h"
#include "kernels.h"
#include "xnn.h"

/* A band's conv rows in the buffer: about a quarter of a Zen 4 / Cortex-A76 L2, leaving room
 * for the input rows and the weights that the conv reads alongside. */
#define EB_BAND_BYTES ((size_t)256 * 1024)
/* Chunks per thread (below): each boundary recomputes a conv row or two, ~1 % of a stem each. */
#define EB_BAND_CHUNKS 4

/* Pool rows [p0, p1) read conv rows [lo, hi), at buffer row 0 on; rows [lo, c0) were
 * computed by the band before (moved to the front), [c0, hi) are computed here. */
typedef struct {
  int p0, p1, lo, hi, c0;
} band;

/* Threads do not share bands: each takes contiguous chunks of the pool's rows and runs their
 * bands in order in a buffer of its chunk's own, so the whole stem is one parallel loop (no
 * barrier per band; on a busy machine each one can cost a time slice). Chunks recompute the
 * conv rows their first band shares with the chunk before, computed alike, so the bytes do
 * not depend on the thread count. */
typedef struct {
  int n;
  band *b;
  void **op; /* per band: its conv rows' XNNPACK operator (NULL: none to add, or `stem` runs) */
  float *buf;
} chunk;

typedef struct {
  int nc;
  chunk *c;
  eb_conv_geom pg, cg; /* pool and conv geometry */
  /* the stem kernel (float/stem.h) with its packed weights, or NULL: XNNPACK */
  eb_stem_rows_fn stem;
  float *packed, lo, hi;
} band_state;

static eb_conv_geom pool_geom(const eb_model *m, const eb_node *pool) {
  const eb_tensor *x = &m->tensors[pool->in[0]], *y = &m->tensors[pool->out];
  const eb_params *p = &pool->p;
  return (eb_conv_geom){(int)x->dims[0], (int)x->dims[1], (int)x->dims[2], (int)x->dims[3], (int)y->dims[1],
                        (int)y->dims[2], (int)y->dims[3], p->kernel[0], p->kernel[1], p->strides[0], p->strides[1],
                        p->dilations[0], p->dilations[1], p->pads[0], p->pads[1], 1};
}

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* The bands of pool rows [q0, q1), `rows` each, in order; returns their count (b NULL:
 * count only). */
static int plan(const eb_conv_geom *pg, int rows, int q0, int q1, band *b) {
  int n = 0, done = 0;
  for (int p0 = q0; p0 < q1; p0 += rows, n++) {
    const int p1 = imin(p0 + rows, q1);
    band x;
    x.p0 = p0, x.p1 = p1;
    x.lo = imax(0, p0 * pg->sh - pg->pt);
    x.hi = imin(pg->ih, (p1 - 1) * pg->sh - pg->pt + (pg->kh - 1) * pg->dh + 1);
    x.c0 = imax(x.lo, done);
    if (x.hi > done) done = x.hi;
    if (b) b[n] = x;
  }
  return n;
}

static size_t row_bytes(const eb_conv_geom *pg) { return (size_t)pg->iw * (size_t)pg->ic * sizeof(float); }

/* Buffer rows the bands of pool rows [q0, q1) need at most. */
static int buffer_rows(const eb_conv_geom *pg, int rows, int q0, int q1) {
  int most = 0;
  for (int p0 = q0; p0 < q1; p0 += rows) {
    band b = {0, 0, 0, 0, 0};
    plan(pg, rows, p0, imin(p0 + rows, q1), &b);
    most = imax(most, b.hi - b.lo);
  }
  return most;
}

int eb_band_rows(const eb_model *m, const eb_node *conv, const eb_node *pool) {
  const eb_tensor *x = &m->tensors[conv->in[0]];
  const eb_conv_geom pg = pool_geom(m, pool);
  /* one image of several rows; a window the pool kernel takes */
  if (x->ndim != 4 || x->dims[0] != 1 || pg.oh < 2 || pg.kh * pg.kw > EB_FMAX_TAPS) return 0;
  const char *env = getenv("EDGEBNN_BAND_BYTES");
  const size_t target = env && atol(env) > 0 ? (size_t)atol(env) : EB_BAND_BYTES;
  int rows = 1;
  while (rows < pg.oh && (size_t)buffer_rows(&pg, rows + 1, 0, pg.oh) * row_bytes(&pg) <= target) rows++;
  /* one band would be the unbanded map with extra steps */
  return rows < pg.oh ? rows : 0;
}

void eb_band_free(void *state) {
  band_state *st = state;
  if (!st) return;
  for (int i = 0; st->c && i < st->nc; i++) {
    chunk *c = &st->c[i];
    for (int j = 0; c->op && j < c->n; j++) eb_xnn_delete(c->op[j]);
    free(c->op);
    free(c->b);
    free(c->buf);
  }
  free(st->c);
  free(st->packed);
  free(st);
}

static void *alloc_aligned(size_t bytes) {
  return aligned_alloc(EB_ARENA_ALIGN, (bytes + EB_ARENA_ALIGN - 1) / EB_ARENA_ALIGN * EB_ARENA_ALIGN);
}

/* XNNPACK operators for the conv rows of a chunk's bands, each writing into the chunk's buffer. */
static eb_status chunk_ops(const eb_session *s, const eb_node *conv, const band_state *st, chunk *c, eb_error *err) {
  const eb_model *m = s->model;
  const eb_tensor *x = &m->tensors[conv->in[0]];
  const eb_params *cp = &conv->p;
  const int ih = (int)x->dims[1], span = (st->cg.kh - 1) * cp->dilations[0] + 1;
  const size_t in_row = (size_t)x->dims[2] * (size_t)x->dims[3], out_row = row_bytes(&st->pg) / sizeof(float);
  for (int j = 0; j < c->n; j++) {
    const band *b = &c->b[j];
    if (b->c0 >= b->hi) continue;
    /* input rows of conv rows [c0, hi), and the padding rows around them */
    const int a = b->c0 * cp->strides[0] - cp->pads[0], e = (b->hi - 1) * cp->strides[0] - cp->pads[0] + span;
    const int in_lo = imax(0, a), in_hi = imin(ih, e);
    eb_status r = eb_xnn_create_conv_rows(s, conv, in_lo - a, e - in_hi, in_hi - in_lo,
                                          (const float *)s->ptr[conv->in[0]] + (size_t)in_lo * in_row,
                                          c->buf + (size_t)(b->c0 - b->lo) * out_row, &c->op[j], err);
    if (r) return r;
  }
  return EB_OK;
}

eb_status eb_band_prepare(const eb_session *s, const eb_node *pool, void **state, eb_error *err) {
  const eb_model *m = s->model;
  const eb_node *conv = &m->nodes[pool->band_conv];
  const eb_tensor *x = &m->tensors[conv->in[0]], *w = &m->tensors[conv->in[1]];
  const eb_params *cp = &conv->p;
  band_state *st = calloc(1, sizeof *st);
  *state = st;
  if (!st) return eb_fail(err, EB_ERR_NOMEM, "op '%s': out of memory", pool->name);
  st->pg = pool_geom(m, pool);
  st->cg = (eb_conv_geom){1, (int)x->dims[1], (int)x->dims[2], (int)x->dims[3], st->pg.ih, st->pg.iw, st->pg.ic,
                          (int)w->dims[1], (int)w->dims[2], cp->strides[0], cp->strides[1], cp->dilations[0],
                          cp->dilations[1], cp->pads[0], cp->pads[1], cp->groups};
  st->lo = cp->out_min, st->hi = cp->out_max;
  /* EDGEBNN_BAND_XNNPACK: XNNPACK's conv in the bands even where the stem kernel runs (tests) */
  if (!getenv("EDGEBNN_BAND_XNNPACK") && (st->stem = eb_stem_kernel(&st->cg))) {
    st->packed = alloc_aligned(eb_stem_packed_floats(&st->cg) * sizeof(float));
    if (!st->packed) return eb_fail(err, EB_ERR_NOMEM, "op '%s': out of memory", pool->name);
    eb_stem_pack(&st->cg, w->data, conv->n_in > 2 && conv->in[2] >= 0 ? m->tensors[conv->in[2]].data : NULL,
                 st->packed);
  }
  const int rows = pool->band_rows, threads = eb_pool_threads(s->pool), oh = st->pg.oh;
  /* a few chunks per thread, so that a thread that wakes late has its last ones taken over */
  st->nc = imin(threads > 1 ? EB_BAND_CHUNKS * threads : 1, oh);
  st->c = calloc((size_t)st->nc, sizeof *st->c);
  if (!st->c) return eb_fail(err, EB_ERR_NOMEM, "op '%s': out of memory", pool->name);
  for (int i = 0; i < st->nc; i++) {
    chunk *c = &st->c[i];
    const int q0 = (int)((int64_t)oh * i / st->nc), q1 = (int)((int64_t)oh * (i + 1) / st->nc);
    c->n = plan(&st->pg, rows, q0, q1, NULL);
    c->b = malloc((size_t)c->n * sizeof *c->b);
    c->op = calloc((size_t)c->n, sizeof *c->op);
    c->buf = alloc_aligned((size_t)buffer_rows(&st->pg, rows, q0, q1) * row_bytes(&st->pg));
    if (!c->b || !c->op || !c->buf) return eb_fail(err, EB_ERR_NOMEM, "op '%s': out of memory", pool->name);
    plan(&st->pg, rows, q0, q1, c->b);
    if (!st->stem) {
      eb_status r = chunk_ops(s, conv, st, c, err);
      if (r) return r;
    }
  }
  return EB_OK;
}

typedef struct {
  const band_state *st;
  const eb_bin_kernels *k;
  const float *x, *thr;
  float *y;
  uint64_t *sbits;
} run_job;

static void chunk_task(void *ctx, size_t i) {
  const run_job *j = ctx;
  const band_state *st = j->st;
  const chunk *c = &st->c[i];
  const size_t rb = row_bytes(&st->pg);
  for (int n = 0; n < c->n; n++) {
    const band *b = &c->b[n];
    /* the rows this band shares with the one before move to the front (a row or two) */
    if (n > 0 && b->c0 > b->lo && b->lo > c->b[n - 1].lo)
      memmove(c->buf, (uint8_t *)c->buf + (size_t)(b->lo - c->b[n - 1].lo) * rb, (size_t)(b->c0 - b->lo) * rb);
    if (b->c0 < b->hi) {
      if (st->stem)
        st->stem(&st->cg, st->packed, j->x, st->lo, st->hi, c->buf + (size_t)(b->c0 - b->lo) * rb / sizeof(float),
                 b->c0, b->hi);
      else
        eb_xnn_run_alone(c->op[n]);
    }
    j->k->maxpool_f32_tile(&st->pg, c->buf, b->lo, j->thr, j->y, j->sbits, b->p0, b->p1);
  }
}

void eb_band_run(const eb_session *s, const eb_node *pool, const void *state) {
  const band_state *st = state;
  const eb_model *m = s->model;
  run_job j = {st, s->bk, s->ptr[m->nodes[pool->band_conv].in[0]], NULL, s->ptr[pool->out], NULL};
  if (pool->fused_sign >= 0) {
    const eb_node *sp = &m->nodes[pool->fused_sign];
    j.sbits = s->ptr[sp->out];
    j.thr = sp->n_in > 1 && sp->in[1] >= 0 ? s->ptr[sp->in[1]] : NULL;
  }
  eb_parallel_for(s->pool, (size_t)st->nc, chunk_task, &j);
}
