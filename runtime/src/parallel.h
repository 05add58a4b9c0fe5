/* Parallel loops for kernels. A session owns one pool (pthreadpool when the build
 * found it, none otherwise); kernels split their work into independent tiles and
 * call eb_parallel_for, so results never depend on the thread count. */
#ifndef EDGEBNN_PARALLEL_H
#define EDGEBNN_PARALLEL_H

#include <stddef.h>

typedef struct eb_pool eb_pool;

/* threads <= 1 gives NULL: every loop then runs inline on the caller. */
eb_pool *eb_pool_create(int threads);
void eb_pool_free(eb_pool *pool);
/* Threads the pool runs (1 for NULL). */
int eb_pool_threads(const eb_pool *pool);
/* The pthreadpool_t behind the pool, for libraries that take one (XNNPACK); NULL
 * when single-threaded or built without pthreadpool. */
void *eb_pool_pthreadpool(const eb_pool *pool);

/* Calls fn(ctx, i) for i in [0, n), spread over the pool's threads. */
void eb_parallel_for(eb_pool *pool, size_t n, void (*fn)(void *ctx, size_t i), void *ctx);

#endif
