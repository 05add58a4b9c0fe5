/* The "q8" backend: int8 CONV2D (groups 1), DEPTHWISE_CONV2D (one output channel per
 * input channel), FULLY_CONNECTED and ADD on the kernels of kernels/q8, bit-exact with
 * the reference kernels. Chosen at load unless EDGEBNN_KERNELS=ref or EDGEBNN_Q8=0
 * (then XNNPACK, if the build has it, or ref); each session packs the weights once and
 * splits rows over its thread pool. */
#ifndef EDGEBNN_Q8_OPS_H
#define EDGEBNN_Q8_OPS_H

#include "internal.h"
#include "ref/ref.h"

/* Whether int8 layers may use the q8 backend (environment read at load). */
int eb_q8_enabled(void);
int eb_q8_supports(const eb_model *m, const eb_node *nd);
/* q: the node's zero points and activation range (as the reference kernels get them). */
eb_status eb_q8_create(const eb_session *s, const eb_node *nd, const eb_q8_io *q, void **op, eb_error *err);
void eb_q8_run(const eb_session *s, const eb_node *nd, void *op);
void eb_q8_delete(void *op);
const char *eb_q8_backend_name(void);

#endif
