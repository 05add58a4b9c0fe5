#include "parallel.h"

#include <stdlib.h>

#if defined(EB_HAVE_PTHREADPOOL)
#include <pthreadpool.h>

struct eb_pool {
  pthreadpool_t tp;
};

eb_pool *eb_pool_create(int threads) {
  if (threads <= 1) return NULL;
  eb_pool *p = malloc(sizeof *p);
  if (!p) return NULL;
  p->tp = pthreadpool_create((size_t)threads);
  if (!p->tp) {
    free(p);
    return NULL;
  }
  return p;
}

void eb_pool_free(eb_pool *pool) {
  if (!pool) return;
  pthreadpool_destroy(pool->tp);
  free(pool);
}

int eb_pool_threads(const eb_pool *pool) { return pool ? (int)pthreadpool_get_threads_count(pool->tp) : 1; }

void *eb_pool_pthreadpool(const eb_pool *pool) { return pool ? (void *)pool->tp : NULL; }

void eb_parallel_for(eb_pool *pool, size_t n, void (*fn)(void *ctx, size_t i), void *ctx) {
  if (!pool || n <= 1) {
    for (size_t i = 0; i < n; i++) fn(ctx, i);
    return;
  }
  pthreadpool_parallelize_1d(pool->tp, (pthreadpool_task_1d_t)fn, ctx, n, 0);
}

#else /* no pthreadpool: the runtime stays single-threaded */

eb_pool *eb_pool_create(int threads) {
  (void)threads;
  return NULL;
}
void eb_pool_free(eb_pool *pool) { (void)pool; }
int eb_pool_threads(const eb_pool *pool) {
  (void)pool;
  return 1;
}
void *eb_pool_pthreadpool(const eb_pool *pool) {
  (void)pool;
  return NULL;
}
void eb_parallel_for(eb_pool *pool, size_t n, void (*fn)(void *ctx, size_t i), void *ctx) {
  (void)pool;
  for (size_t i = 0; i < n; i++) fn(ctx, i);
}
#endif
