/* One activation arena per session, planned once at load (TFLite Micro's greedy-by-size):
 * every activation tensor and every op's scratch is a block with a lifetime [first, last]
 * in op indices; blocks whose lifetimes overlap never share bytes. Largest blocks are
 * placed first, each at the lowest offset that fits between already-placed blocks. */
#include <stdlib.h>

#include "internal.h"

typedef struct {
  size_t size, offset;
  int first, last;
  int tensor; /* -1: scratch of node `node` */
  int node;
} block;

static int by_size_desc(const void *a, const void *b) {
  const block *x = a, *y = b;
  if (x->size != y->size) return x->size < y->size ? 1 : -1;
  return x->first - y->first;
}

static int by_offset(const void *a, const void *b) {
  const block *x = *(const block *const *)a, *y = *(const block *const *)b;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static size_t align_up(size_t n) { return (n + EB_ARENA_ALIGN - 1) / EB_ARENA_ALIGN * EB_ARENA_ALIGN; }

/* The tensor whose block t lives in: t itself unless it overwrites another in place. */
static int root_of(const eb_model *m, int t) {
  while (m->tensors[t].alias >= 0) t = m->tensors[t].alias;
  return t;
}

eb_status eb_plan_arena(eb_model *m, eb_error *err) {
  size_t n = 0;
  /* a chain of in-place tensors is one block, alive from its root's birth to its last reader */
  for (int i = 0; i < m->n_tensors; i++) {
    const eb_tensor *t = &m->tensors[i];
    if (t->alias < 0) continue;
    eb_tensor *r = &m->tensors[root_of(m, i)];
    if (t->last_use > r->last_use) r->last_use = t->last_use;
  }
  for (int i = 0; i < m->n_tensors; i++)
    if (!m->tensors[i].data && m->tensors[i].producer != -2 && m->tensors[i].alias < 0) n++;
  for (int k = 0; k < m->n_nodes; k++)
    if (m->nodes[k].scratch_bytes) n++;
  m->arena_bytes = 0;
  if (n == 0) return EB_OK;
  block *bl = calloc(n, sizeof *bl);
  const block **placed = calloc(n, sizeof *placed);
  if (!bl || !placed) {
    free(bl);
    free(placed);
    return eb_fail(err, EB_ERR_NOMEM, "out of memory planning the arena");
  }
  size_t nb = 0;
  for (int i = 0; i < m->n_tensors; i++) {
    eb_tensor *t = &m->tensors[i];
    if (t->data || t->producer == -2 || t->alias >= 0) continue; /* constants, unused, in place */
    int first = t->producer < 0 ? 0 : t->producer;
    int last = t->last_use < first ? first : t->last_use;
    bl[nb++] = (block){align_up(t->nbytes), 0, first, last, i, -1};
  }
  for (int k = 0; k < m->n_nodes; k++)
    if (m->nodes[k].scratch_bytes) bl[nb++] = (block){align_up(m->nodes[k].scratch_bytes), 0, k, k, -1, k};
  qsort(bl, nb, sizeof *bl, by_size_desc);
  size_t total = 0, n_placed = 0;
  for (size_t i = 0; i < nb; i++) {
    block *b = &bl[i];
    /* conflicts are the placed blocks alive at the same time, scanned by offset */
    size_t nc = 0;
    for (size_t j = 0; j < n_placed; j++)
      if (placed[j]->first <= b->last && b->first <= placed[j]->last) placed[nc++] = placed[j];
    /* placed[0..nc) now holds the conflicts; the rest of the placed list is rebuilt below */
    qsort(placed, nc, sizeof *placed, by_offset);
    size_t off = 0;
    for (size_t j = 0; j < nc; j++) {
      if (placed[j]->offset >= off + b->size) break; /* fits in the gap before it */
      size_t end = placed[j]->offset + placed[j]->size;
      if (end > off) off = end;
    }
    b->offset = off;
    if (off + b->size < off) {
      free(bl);
      free(placed);
      return eb_fail(err, EB_ERR_FORMAT, "arena size overflows");
    }
    if (off + b->size > total) total = off + b->size;
    /* the conflict scan reordered `placed`; rebuild it from the placed prefix of bl */
    n_placed = 0;
    for (size_t j = 0; j <= i; j++) placed[n_placed++] = &bl[j];
  }
  for (size_t i = 0; i < nb; i++) {
    if (bl[i].tensor >= 0) m->tensors[bl[i].tensor].arena_offset = bl[i].offset;
    else m->nodes[bl[i].node].scratch_offset = bl[i].offset;
  }
  for (int i = 0; i < m->n_tensors; i++)
    if (m->tensors[i].alias >= 0) m->tensors[i].arena_offset = m->tensors[root_of(m, i)].arena_offset;
  m->arena_bytes = total + EB_ARENA_READ_SLACK;
  free(bl);
  free(placed);
  return EB_OK;
}
