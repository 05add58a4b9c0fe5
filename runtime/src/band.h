/* Banded stem: a float conv on XNNPACK whose output only a max pool reads (ResNet's and
 * Bi-Real's 7x7 stem) runs inside the pool, a band of output rows at a time, so its map
 * (3.2 MB at 224x224) never goes to memory whole: each band's conv rows are pooled while
 * they are still in L2, and the first SIGN_PACK of the pool's output is written in the same
 * pass (fuse.c marks the nodes; the pool node then does all three). Bands change neither the
 * conv's arithmetic (each band is the same XNNPACK operator with the band's vertical
 * padding, so every pixel sums the same products in the same order) nor the pool's. */
#ifndef EDGEBNN_BAND_H
#define EDGEBNN_BAND_H

#include "internal.h"

/* Pool output rows per band for this conv -> pool pair (a band's conv rows about
 * EB_BAND_BYTES; the environment's EDGEBNN_BAND_BYTES overrides it, read here at load),
 * or 0 when the pair cannot run in bands. */
int eb_band_rows(const eb_model *m, const eb_node *conv, const eb_node *pool);
/* Per session: the bands of each thread, their buffers (a band's conv rows, kept out of
 * the arena: their count is the session's thread count) and the conv's packed weights or
 * one XNNPACK operator per band, set up on this arena. */
eb_status eb_band_prepare(const eb_session *s, const eb_node *pool, void **state, eb_error *err);
void eb_band_run(const eb_session *s, const eb_node *pool, const void *state);
void eb_band_free(void *state);

#endif
