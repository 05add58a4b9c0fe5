/* XNNPACK backend: float (and int8) conv, depthwise, FC, pooling and add. Whether a
 * node runs here is decided once at load (eb_xnn_supports, so the model can report
 * it); each session creates its operators (XNNPACK packs the weights then) and sets
 * them up on the session's arena, whose addresses never change; a run only calls
 * xnn_run_operator. Without XNNPACK in the build every node stays on ref. */
#ifndef EDGEBNN_XNN_H
#define EDGEBNN_XNN_H

#include "internal.h"

/* Builds that have XNNPACK say so once the library initialized on this CPU. */
int eb_xnn_available(void);
/* The node's shape, dtypes and attributes are ones XNNPACK computes with our semantics. */
int eb_xnn_supports(const eb_model *m, const eb_node *nd);
/* Creates and sets up the node's operator for this session's arena and pool. */
eb_status eb_xnn_create(const eb_session *s, const eb_node *nd, void **op, eb_error *err);
/* A float CONV2D node's operator for one band of its output rows (band.c): the input is
 * in_h rows from x (batch 1) with pad_top / pad_bottom rows of zeros around them in place
 * of the node's own vertical padding; the output rows go to y. Run it with eb_xnn_run_alone. */
eb_status eb_xnn_create_conv_rows(const eb_session *s, const eb_node *nd, int pad_top, int pad_bottom, int in_h,
                                  const void *x, void *y, void **op, eb_error *err);
void eb_xnn_run(const eb_session *s, void *op);
/* On the calling thread only (an operator made by eb_xnn_create_conv_rows). */
void eb_xnn_run_alone(void *op);
void eb_xnn_delete(void *op);

#endif
