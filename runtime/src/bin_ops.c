#include "bin_ops.h"

#include <stdlib.h>
#include <string.h>

/* ---- tiling ------------------------------------------------------------------ */

/* Single-threaded: one tile (weights of a channel group stay in L1 across all
 * rows). Threaded: about 4 tiles per thread for balance, over rows first, and
 * over channel groups too when there are too few rows (7x7 layers, FC). */
typedef struct {
  int rows, rchunk, nr;   /* row tiles */
  int oc, ochunk, no;     /* channel tiles, ochunk a multiple of EB_BPACK_OC_ALIGN */
} tiling;

static int cdiv(int a, int b) { return (a + b - 1) / b; }

static tiling plan(const eb_pool *pool, int rows, int oc, int align) {
  const int threads = eb_pool_threads(pool), groups = cdiv(oc, align);
  tiling t = {rows, rows, 1, oc, groups * align, 1};
  if (threads > 1) {
    const int target = threads * 4;
    if (rows >= target) {
      t.rchunk = cdiv(rows, target);
    } else {
      t.rchunk = 1;
      t.ochunk = cdiv(groups, cdiv(target, rows)) * align;
    }
    t.nr = cdiv(rows, t.rchunk);
    t.no = cdiv(oc, t.ochunk);
  }
  return t;
}

static void tile_bounds(const tiling *t, size_t i, int *r0, int *r1, int *oc0, int *oc1) {
  const int rt = (int)(i / (size_t)t->no), ot = (int)(i % (size_t)t->no);
  *r0 = rt * t->rchunk;
  *r1 = *r0 + t->rchunk < t->rows ? *r0 + t->rchunk : t->rows;
  *oc0 = ot * t->ochunk;
  *oc1 = *oc0 + t->ochunk < t->oc ? *oc0 + t->ochunk : t->oc;
}

/* ---- conv, FC, K-bit ----------------------------------------------------------- */

typedef struct {
  const eb_bin_kernels *k;
  const eb_conv_geom *g;
  int pad_value, bits;
  const uint64_t *x;
  const void *packed;
  const eb_bin_out *out;
  tiling t;
} conv_job;

static void conv_task(void *ctx, size_t i) {
  const conv_job *j = ctx;
  int r0, r1, oc0, oc1;
  tile_bounds(&j->t, i, &r0, &r1, &oc0, &oc1);
  if (j->bits) j->k->kbit_tile(j->g, j->bits, j->x, j->packed, j->out, r0, r1, oc0, oc1);
  else j->k->bconv_tile(j->g, j->pad_value, j->x, j->packed, j->out, r0, r1, oc0, oc1);
}

static void run_conv(eb_pool *pool, const eb_bin_kernels *k, const eb_conv_geom *g, int pad_value, int bits,
                     const uint64_t *x, const void *packed, const eb_bin_out *out) {
  const int align = out->bits || out->sbits ? EB_BITS_OC_ALIGN : EB_BPACK_OC_ALIGN;
  conv_job j = {k, g, pad_value, bits, x, packed, out, plan(pool, g->n * g->oh, g->oc, align)};
  eb_parallel_for(pool, (size_t)j.t.nr * (size_t)j.t.no, conv_task, &j);
}

/* ref computes whole int32 accumulators (into out->acc), then the output stage. */
static void ref_output(size_t rows, int oc, const eb_bin_out *out) {
  if (out->bits) eb_ref_acc_to_bits(rows, oc, out->acc, out->thr, out->dir, out->bits);
  else if (out->f32) {
    eb_ref_acc_to_f32(rows, oc, out->acc, out->mult, out->bias, out->out_min, out->out_max, out->f32);
    if (out->post & EB_POST_CLAMP) eb_ref_clamp_f32(rows * (size_t)oc, out->f32, out->clamp_lo, out->clamp_hi, out->f32);
    if (out->post & EB_POST_AFFINE)
      eb_ref_affine_f32(rows, oc, out->f32, out->scale, out->shift, out->aff_lo, out->aff_hi, out->f32);
    if (out->res) eb_ref_add_f32(rows * (size_t)oc, out->f32, out->res, out->res_min, out->res_max, out->f32);
    if (out->sbits) eb_ref_pack_f32(rows, oc, out->f32, out->sthr, out->sbits);
  }
}

/* One group of a grouped conv as an ungrouped one: with ic/groups a multiple of
 * 64, group gi's channels are whole words gi*W..(gi+1)*W-1 of each pixel (W =
 * words(ic/groups)), so pixel ix of group gi is pixel ix*groups of an image
 * groups times as wide whose pixels are W words, starting gi*W words in. Strides,
 * dilations and the left padding scale by groups and the windows, interior and
 * borders stay the same: the unchanged tile kernels run each group in place. The
 * packed weights are the [oc][kh][kw][ic/groups] tensor packed as it is. */
int eb_bin_group_fast(int ic, int oc, int groups, int bits_out) {
  const int align = bits_out ? EB_BITS_OC_ALIGN : EB_BPACK_OC_ALIGN;
  return (ic / groups) % 64 == 0 && (oc / groups) % align == 0;
}

static int group_fast(const eb_conv_geom *g, const eb_bin_out *out) {
  return eb_bin_group_fast(g->ic, g->oc, g->groups, out->bits != NULL);
}

typedef struct {
  const eb_bin_kernels *k;
  eb_conv_geom gg; /* a group as the wide ungrouped conv */
  int pad_value, ocg;
  const uint64_t *x;
  size_t xstep; /* words between groups' first words */
  const void *packed;
  const eb_bin_out *out;
  tiling t;
} group_job;

static void group_task(void *ctx, size_t i) {
  const group_job *j = ctx;
  const size_t per = (size_t)j->t.nr * (size_t)j->t.no, gi = i / per;
  int r0, r1, oc0, oc1;
  tile_bounds(&j->t, i % per, &r0, &r1, &oc0, &oc1);
  const int base = (int)gi * j->ocg;
  j->k->bconv_tile(&j->gg, j->pad_value, j->x + gi * j->xstep, j->packed, j->out, r0, r1, base + oc0, base + oc1);
}

void eb_bin_conv(eb_pool *pool, const eb_bin_kernels *k, const eb_conv_geom *g, int pad_value, const uint64_t *x,
                 const uint64_t *w, const void *packed, const eb_bin_out *out) {
  const int grouped = g->groups > 1;
  if (!k->packed || (grouped && !group_fast(g, out))) {
    eb_ref_bconv2d_acc(g, pad_value, x, w, out->acc);
    ref_output((size_t)g->n * (size_t)g->oh * (size_t)g->ow, g->oc, out);
    return;
  }
  if (!grouped) {
    run_conv(pool, k, g, pad_value, 0, x, packed, out);
    return;
  }
  const int G = g->groups, align = out->bits ? EB_BITS_OC_ALIGN : EB_BPACK_OC_ALIGN;
  eb_conv_geom gg = *g;
  gg.ic = g->ic / G;
  gg.iw = g->iw * G;
  gg.sw = g->sw * G;
  gg.dw = g->dw * G;
  gg.pl = g->pl * G;
  gg.groups = 1;
  group_job j = {k, gg, pad_value, g->oc / G, x, eb_words((size_t)gg.ic), packed, out,
                 plan(pool, g->n * g->oh, g->oc / G, align)};
  eb_parallel_for(pool, (size_t)G * (size_t)j.t.nr * (size_t)j.t.no, group_task, &j);
}

void eb_bin_fc(eb_pool *pool, const eb_bin_kernels *k, int n, int kk, int o, const uint64_t *x, const uint64_t *w,
               const void *packed, const eb_bin_out *out) {
  if (!k->packed) {
    eb_ref_bfc_acc(n, kk, o, x, w, out->acc);
    ref_output((size_t)n, o, out);
    return;
  }
  /* a 1x1 conv over a 1 x n image: the batch rows share every weight load */
  const eb_conv_geom g = {1, 1, n, kk, 1, n, o, 1, 1, 1, 1, 1, 1, 0, 0, 1};
  run_conv(pool, k, &g, 0, 0, x, packed, out);
}

typedef struct {
  const eb_conv_geom *g;
  int bits;
  float step;
  const float *x;
  uint64_t *planes;
  size_t npix, chunk;
} planes_job;

static void planes_task(void *ctx, size_t i) {
  const planes_job *j = ctx;
  const size_t p0 = i * j->chunk, p1 = p0 + j->chunk < j->npix ? p0 + j->chunk : j->npix;
  eb_ref_kbit_planes(j->g, j->bits, j->step, j->x, j->planes, p0, p1);
}

void eb_bin_kbit(eb_pool *pool, const eb_bin_kernels *k, const eb_conv_geom *g, int bits, float step, const float *x,
                 const uint64_t *w, const void *packed, const eb_bin_out *out, void *scratch) {
  if (!k->packed) {
    eb_ref_kbit_conv2d_acc(g, bits, step, x, w, out->acc, scratch);
    ref_output((size_t)g->n * (size_t)g->oh * (size_t)g->ow, g->oc, out);
    return;
  }
  const size_t npix = (size_t)g->n * (size_t)g->ih * (size_t)g->iw;
  const size_t tiles = (size_t)eb_pool_threads(pool) * 4;
  planes_job pj = {g, bits, step, x, scratch, npix, (npix + tiles - 1) / tiles};
  eb_parallel_for(pool, (npix + pj.chunk - 1) / pj.chunk, planes_task, &pj);
  run_conv(pool, k, g, 0, bits, scratch, packed, out);
}

/* ---- HORQ ------------------------------------------------------------------------ */

static size_t slot_bytes(const eb_conv_geom *g, int order) {
  return (eb_ref_horq_scratch(g, order) + EB_ARENA_ALIGN - 1) / EB_ARENA_ALIGN * EB_ARENA_ALIGN;
}

size_t eb_bin_horq_scratch(const eb_conv_geom *g, int order) { return EB_HORQ_SLOTS * slot_bytes(g, order); }

typedef struct {
  const eb_bin_kernels *k;
  const eb_conv_geom *g;
  int order;
  const float *x;
  const void *packed;
  int32_t *acc;
  float *beta;
  uint8_t *scratch;
  int rows, rchunk;
  size_t slot;
} horq_job;

static void horq_task(void *ctx, size_t i) {
  const horq_job *j = ctx;
  const int r0 = (int)i * j->rchunk, r1 = r0 + j->rchunk < j->rows ? r0 + j->rchunk : j->rows;
  j->k->horq_tile(j->g, j->order, j->x, j->packed, j->acc, j->beta, j->scratch + i * j->slot, r0, r1);
}

void eb_bin_horq(eb_pool *pool, const eb_bin_kernels *k, const eb_conv_geom *g, int order, const float *x,
                 const uint64_t *w, const void *packed, int32_t *acc, float *beta, void *scratch) {
  if (!k->packed) {
    eb_ref_horq_conv2d_acc(g, order, x, w, acc, beta, scratch);
    return;
  }
  const int rows = g->n * g->oh, threads = eb_pool_threads(pool);
  const int tiles = threads <= 1 ? 1 : (rows < EB_HORQ_SLOTS ? rows : EB_HORQ_SLOTS);
  horq_job j = {k, g, order, x, packed, acc, beta, scratch, rows, cdiv(rows, tiles), slot_bytes(g, order)};
  eb_parallel_for(pool, (size_t)cdiv(rows, j.rchunk), horq_task, &j);
}

/* ---- row-wise ops ------------------------------------------------------------------ */

typedef struct {
  const eb_bin_kernels *k;
  size_t rows, chunk;
  int c;
  const void *x;
  const void *thr, *dir;
  void *y;
  const eb_conv_geom *g;
} rows_job;

static size_t row_chunk(const eb_pool *pool, size_t rows) {
  const size_t tiles = (size_t)eb_pool_threads(pool) * 4;
  return rows < tiles ? 1 : (rows + tiles - 1) / tiles;
}

static void pack_task(void *ctx, size_t i) {
  const rows_job *j = ctx;
  const size_t r0 = i * j->chunk, n = r0 + j->chunk < j->rows ? j->chunk : j->rows - r0;
  j->k->pack_f32(n, j->c, (const float *)j->x + r0 * (size_t)j->c, j->thr,
                 (uint64_t *)j->y + r0 * eb_words((size_t)j->c));
}

void eb_bin_pack(eb_pool *pool, const eb_bin_kernels *k, size_t rows, int c, const float *x, const float *thr,
                 uint64_t *y) {
  rows_job j = {k, rows, row_chunk(pool, rows), c, x, thr, NULL, y, NULL};
  eb_parallel_for(pool, rows ? (rows + j.chunk - 1) / j.chunk : 0, pack_task, &j);
}

static void bits_task(void *ctx, size_t i) {
  const rows_job *j = ctx;
  const size_t r0 = i * j->chunk, n = r0 + j->chunk < j->rows ? j->chunk : j->rows - r0;
  j->k->acc_to_bits(n, j->c, (const int32_t *)j->x + r0 * (size_t)j->c, j->thr, j->dir,
                    (uint64_t *)j->y + r0 * eb_words((size_t)j->c));
}

void eb_bin_to_bits(eb_pool *pool, const eb_bin_kernels *k, size_t rows, int c, const int32_t *acc, const int32_t *thr,
                    const int32_t *dir, uint64_t *y) {
  rows_job j = {k, rows, row_chunk(pool, rows), c, acc, thr, dir, y, NULL};
  eb_parallel_for(pool, rows ? (rows + j.chunk - 1) / j.chunk : 0, bits_task, &j);
}

static void maxpool_task(void *ctx, size_t i) {
  const rows_job *j = ctx;
  const size_t r0 = i * j->chunk, r1 = r0 + j->chunk < j->rows ? r0 + j->chunk : j->rows;
  j->k->bmaxpool_tile(j->g, j->x, j->y, (int)r0, (int)r1);
}

void eb_bin_maxpool(eb_pool *pool, const eb_bin_kernels *k, const eb_conv_geom *g, const uint64_t *x, uint64_t *y) {
  if (!k->packed) {
    eb_ref_bmaxpool(g, x, y);
    return;
  }
  const size_t rows = (size_t)g->n * (size_t)g->oh;
  rows_job j = {k, rows, row_chunk(pool, rows), g->ic, x, NULL, NULL, y, g};
  eb_parallel_for(pool, rows ? (rows + j.chunk - 1) / j.chunk : 0, maxpool_task, &j);
}

/* ---- prepacked weights ------------------------------------------------------------- */

size_t eb_bin_packed_bytes(int oc, int kh, int kw, int ic, int planes) {
  return eb_bpack_bytes(oc, kh * kw, ic, planes);
}

/* Weight geometry of a node that takes packed weights; 0 for any other node. */
static int packed_shape(const eb_model *m, const eb_node *nd, int *oc, int *kh, int *kw, int *ic, int *planes) {
  if (nd->type != EB_OP_BCONV2D && nd->type != EB_OP_BFULLY_CONNECTED && nd->type != EB_OP_KBIT_CONV2D &&
      nd->type != EB_OP_HORQ_CONV2D)
    return 0;
  const eb_tensor *w = &m->tensors[nd->in[1]];
  *oc = (int)w->dims[0];
  if (nd->type == EB_OP_BFULLY_CONNECTED) {
    *kh = *kw = 1;
    *ic = (int)w->dims[1];
  } else {
    *kh = (int)w->dims[1];
    *kw = (int)w->dims[2];
    *ic = (int)w->dims[3];
  }
  *planes = nd->type == EB_OP_KBIT_CONV2D ? nd->p.bits : 1;
  return 1;
}

eb_status eb_bin_prepack(eb_session *s, eb_error *err) {
  const eb_model *m = s->model;
  s->bk = m->bk; /* the variant the model's fusion and arena plan were made for */
  if (!s->bk->packed) return EB_OK;
  s->bpacked = calloc((size_t)m->n_nodes + 1, sizeof *s->bpacked);
  if (!s->bpacked) return eb_fail(err, EB_ERR_NOMEM, "out of memory for packed binary weights");
  for (int i = 0; i < m->n_nodes; i++) {
    const eb_node *nd = &m->nodes[i];
    int oc, kh, kw, ic, planes;
    if (!packed_shape(m, nd, &oc, &kh, &kw, &ic, &planes)) continue;
    const size_t bytes = eb_bin_packed_bytes(oc, kh, kw, ic, planes);
    s->bpacked[i] = aligned_alloc(EB_ARENA_ALIGN, (bytes + EB_ARENA_ALIGN - 1) / EB_ARENA_ALIGN * EB_ARENA_ALIGN);
    if (!s->bpacked[i])
      return eb_fail(err, EB_ERR_NOMEM, "op '%s': out of memory for %zu bytes of packed binary weights", nd->name,
                     bytes);
    eb_bpack(oc, kh * kw, ic, planes, m->tensors[nd->in[1]].data, s->bpacked[i]);
    /* at once, so that the file's copy and the packed one are never both resident;
     * session.c repeats it for pages the next read faults back in around it */
    eb_model_drop_pages(m, m->tensors[nd->in[1]].data, m->tensors[nd->in[1]].nbytes);
  }
  return EB_OK;
}

void eb_bin_prepack_free(eb_session *s) {
  if (!s->bpacked) return;
  for (int i = 0; i < s->model->n_nodes; i++) free(s->bpacked[i]);
  free(s->bpacked);
  s->bpacked = NULL;
}
