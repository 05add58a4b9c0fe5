/* Load-time fusion for the fast binary kernels, and in-place element-wise ops. Between
 * Bi-Real's binary convs sit a float residual ADD and the SIGN_PACK of its sum (QuickNet's
 * also a ReLU and a BatchNorm): as separate ops they read the conv's float map twice and
 * the shortcut once more. Fused, the conv's epilogue
 * adds the shortcut and writes the sum and its packed signs from the same registers
 * (eb_bin_out.res / .sbits), with the expressions of the separate ops, so the bytes
 * are those of the unfused graph (the ref kernels, which this pass leaves alone).
 *
 * The fused work runs at the ADD's place, not the conv's: a shortcut may be computed
 * after the conv (Bi-Real's downsampling blocks pool and project it in between), so
 * the conv's input stays alive until then, and the SIGN_PACK's output is born there. */
#include <stdlib.h>

#include "band.h"
#include "bin_ops.h"
#include "internal.h"
#include "kernels.h"

/* Per tensor, counted once at load: how many inputs (and graph outputs) read it, and the
 * first SIGN_PACK that reads it (-1: none). */
typedef struct {
  int *readers, *first_sign;
} uses;

static int uses_of(const eb_model *m, uses *u) {
  u->readers = calloc((size_t)m->n_tensors + 1, sizeof *u->readers);
  u->first_sign = malloc(((size_t)m->n_tensors + 1) * sizeof *u->first_sign);
  if (!u->readers || !u->first_sign) return 0;
  for (int i = 0; i < m->n_tensors; i++) u->first_sign[i] = -1;
  for (int k = 0; k < m->n_nodes; k++) {
    const eb_node *nd = &m->nodes[k];
    for (int i = 0; i < nd->n_in; i++)
      if (nd->in[i] >= 0) u->readers[nd->in[i]]++;
    if (nd->type == EB_OP_SIGN_PACK && u->first_sign[nd->in[0]] < 0) u->first_sign[nd->in[0]] = k;
  }
  for (int i = 0; i < m->n_outputs; i++) u->readers[m->outputs[i]]++;
  return 1;
}

/* The element-wise stage (clamp: RELU/RELU6/HARDTANH, else AFFINE) on the ref kernels that
 * produces tensor t, read by one op only; or -1. */
static int stage_producing(const eb_model *m, const uses *u, int t, int clamp) {
  const eb_tensor *y = &m->tensors[t];
  if (y->data || y->producer < 0 || u->readers[t] != 1) return -1;
  const eb_node *nd = &m->nodes[y->producer];
  const int ok = clamp ? nd->type == EB_OP_RELU || nd->type == EB_OP_RELU6 || nd->type == EB_OP_HARDTANH
                       : nd->type == EB_OP_AFFINE;
  if (!ok || nd->skipped || nd->backend != EB_BACKEND_REF || m->tensors[nd->in[0]].dtype != EB_F32) return -1;
  return y->producer;
}

static void drop_tensor(eb_model *m, int t) {
  m->tensors[t].producer = -2; /* no arena block: nothing writes or reads it */
  m->tensors[t].alias = -1;
}

static int conv_with_f32_out(const eb_model *m, int k) {
  const eb_node *nd = &m->nodes[k];
  return (nd->type == EB_OP_BCONV2D || nd->type == EB_OP_BFULLY_CONNECTED) && !nd->skipped &&
         m->tensors[nd->out].dtype == EB_F32;
}

/* The sum may overwrite the shortcut in place when nothing reads the shortcut later:
 * each output element is computed from the same element of the shortcut only, read
 * before it is written (and tiles of threads are disjoint), so the shortcut's bytes are
 * reused; the block stays hot in cache instead of a second map being pulled in. */
static int can_overwrite(const eb_model *m, int r, int j) {
  const eb_tensor *t = &m->tensors[r];
  if (t->data || t->producer < 0 || t->last_use != j) return 0;
  for (int i = 0; i < m->n_outputs; i++)
    if (m->outputs[i] == r) return 0;
  return 1;
}

/* Element-wise ops on the reference kernels (y[i] from x[i] alone, per channel constants)
 * write over their input when nothing reads it later: QuickNet's ReLU and BatchNorm between
 * its binary convs and shortcuts then hold one float map, not three. */
static int elementwise_in_place(const eb_model *m, const eb_node *nd) {
  switch (nd->type) {
    case EB_OP_RELU: case EB_OP_RELU6: case EB_OP_HARDTANH: case EB_OP_PRELU: case EB_OP_ABS: case EB_OP_AFFINE:
      break;
    default:
      return 0;
  }
  const eb_tensor *x = &m->tensors[nd->in[0]], *y = &m->tensors[nd->out];
  return nd->backend == EB_BACKEND_REF && x->dtype == EB_F32 && y->dtype == EB_F32 && x->nbytes == y->nbytes &&
         can_overwrite(m, nd->in[0], (int)(nd - m->nodes));
}

/* The first SIGN_PACK of tensor t after node j runs in node j: its output is born there. */
static int take_sign(eb_model *m, const uses *u, int t, int j) {
  const int i = u->first_sign[t];
  if (i <= j) return -1;
  m->nodes[i].skipped = 1;
  m->tensors[m->nodes[i].out].producer = j;
  return i;
}

/* A float conv on XNNPACK whose map only a max pool reads runs in bands inside the pool,
 * which also writes the first SIGN_PACK of its output (band.h); the map is never whole. */
static void band_stem(eb_model *m, const uses *u, int j) {
  eb_node *pool = &m->nodes[j];
  if (pool->type != EB_OP_MAX_POOL2D || pool->skipped || m->tensors[pool->out].dtype != EB_F32) return;
  const int t = pool->in[0];
  const eb_tensor *y = &m->tensors[t];
  if (y->data || y->producer < 0 || y->dtype != EB_F32 || u->readers[t] != 1) return;
  const int k = y->producer;
  eb_node *conv = &m->nodes[k];
  if (conv->type != EB_OP_CONV2D || conv->skipped || conv->backend != EB_BACKEND_XNNPACK) return;
  const int rows = eb_band_rows(m, conv, pool);
  if (rows <= 0) return;
  conv->skipped = 1;
  drop_tensor(m, t);
  eb_tensor *x = &m->tensors[conv->in[0]];
  if (!x->data && x->last_use < j) x->last_use = j;
  pool->band_conv = k;
  pool->band_rows = rows;
  pool->backend = EB_BACKEND_BAND;
  pool->fused_sign = take_sign(m, u, pool->out, j);
}

void eb_fuse_graph(eb_model *m) {
  for (int k = 0; k < m->n_nodes; k++)
    m->nodes[k].fused_conv = m->nodes[k].fused_sign = m->nodes[k].fused_clamp = m->nodes[k].fused_affine =
        m->nodes[k].band_conv = -1;
  for (int i = 0; i < m->n_tensors; i++) m->tensors[i].alias = -1;
  for (int k = 0; k < m->n_nodes; k++)
    if (elementwise_in_place(m, &m->nodes[k])) m->tensors[m->nodes[k].out].alias = m->nodes[k].in[0];
  if (!m->bk || !m->bk->packed) return;
  uses u;
  if (!uses_of(m, &u)) { /* out of memory: nothing is fused, which is still correct */
    free(u.readers);
    free(u.first_sign);
    return;
  }
  /* the fast kernels write outputs from registers: the int32 scratch is ref's alone (and a
   * grouped conv's whose groups do not fit the fast kernels: it runs on ref) */
  for (int k = 0; k < m->n_nodes; k++) {
    eb_node *nd = &m->nodes[k];
    if (nd->type == EB_OP_BCONV2D && nd->p.groups > 1 &&
        !eb_bin_group_fast((int)m->tensors[nd->in[0]].dims[3], (int)m->tensors[nd->in[1]].dims[0], nd->p.groups,
                           m->tensors[nd->out].dtype == EB_BIT1))
      continue;
    if (nd->type == EB_OP_BCONV2D || nd->type == EB_OP_BFULLY_CONNECTED) nd->scratch_bytes = 0;
  }
  for (int j = 0; j < m->n_nodes; j++) band_stem(m, &u, j);
  for (int j = 0; j < m->n_nodes; j++) {
    eb_node *add = &m->nodes[j];
    if (add->type != EB_OP_ADD || m->tensors[add->out].dtype != EB_F32) continue;
    /* walking back from the ADD: [AFFINE] <- [RELU | RELU6 | HARDTANH] <- binary conv, each
     * map read by the next stage alone (so none of them is ever written) */
    int k = -1, r = -1, clp = -1, aff = -1;
    for (int i = 0; i < 2 && k < 0 && add->in[0] != add->in[1]; i++) {
      int t = add->in[i];
      aff = stage_producing(m, &u, t, 0);
      if (aff >= 0) t = m->nodes[aff].in[0];
      clp = stage_producing(m, &u, t, 1);
      if (clp >= 0) t = m->nodes[clp].in[0];
      const eb_tensor *y = &m->tensors[t];
      if (y->data || y->producer < 0 || !conv_with_f32_out(m, y->producer) || u.readers[t] != 1) continue;
      k = y->producer;
      r = add->in[1 - i];
    }
    if (k < 0) continue;
    eb_node *conv = &m->nodes[k];
    conv->skipped = 1;
    drop_tensor(m, conv->out);
    add->fused_res = r;
    add->fused_clamp = clp;
    add->fused_affine = aff;
    for (int s = 0; s < 2; s++) {
      const int st = s ? aff : clp;
      if (st < 0) continue;
      m->nodes[st].skipped = 1;
      drop_tensor(m, m->nodes[st].out);
    }
    if (can_overwrite(m, r, j)) m->tensors[add->out].alias = r;
    eb_tensor *x = &m->tensors[conv->in[0]];
    if (!x->data && x->last_use < j) x->last_use = j;
    add->fused_conv = k;
    add->backend = EB_BACKEND_BINARY;
    add->scratch_bytes = 0;
    /* the first SIGN_PACK of the sum, if any, is written here too */
    add->fused_sign = take_sign(m, &u, add->out, j);
  }
  free(u.readers);
  free(u.first_sign);
}
