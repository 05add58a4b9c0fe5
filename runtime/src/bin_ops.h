/* Binary ops on a kernel variant and a thread pool: each op is cut into tiles
 * (output rows x output-channel groups) that the variant's tile kernels compute
 * independently, so the bytes never depend on the thread count. The ref
 * variant runs the whole-op eb_ref_* kernel on the caller's thread. */
#ifndef EDGEBNN_BIN_OPS_H
#define EDGEBNN_BIN_OPS_H

#include "internal.h"
#include "kernels.h"

/* HORQ tiles each need a private patch scratch: at most this many tiles. */
#define EB_HORQ_SLOTS 8

/* Session creation: packed weights for every binary conv/FC/K-bit/HORQ node when
 * the session's variant uses them (s->bk), freed by eb_bin_prepack_free. */
eb_status eb_bin_prepack(eb_session *s, eb_error *err);
void eb_bin_prepack_free(eb_session *s);

/* Packed bytes for a node's weights [oc][kh][kw][ic] (FC: kh = kw = 1), planes as bpack.h. */
size_t eb_bin_packed_bytes(int oc, int kh, int kw, int ic, int planes);

/* Conv, FC and K-bit conv write their final output as *out says (kernels.h):
 * packed bits or floats straight from the fast kernels' registers; out->acc is
 * the int32 scratch that only the ref variant fills before its output stage. */
void eb_bin_conv(eb_pool *pool, const eb_bin_kernels *k, const eb_conv_geom *g, int pad_value, const uint64_t *x,
                 const uint64_t *w, const void *packed, const eb_bin_out *out);
void eb_bin_fc(eb_pool *pool, const eb_bin_kernels *k, int n, int kk, int o, const uint64_t *x, const uint64_t *w,
               const void *packed, const eb_bin_out *out);
/* scratch: eb_ref_kbit_scratch bytes (the bit planes). */
void eb_bin_kbit(eb_pool *pool, const eb_bin_kernels *k, const eb_conv_geom *g, int bits, float step, const float *x,
                 const uint64_t *w, const void *packed, const eb_bin_out *out, void *scratch);
/* scratch: eb_bin_horq_scratch bytes, 64-byte aligned. */
size_t eb_bin_horq_scratch(const eb_conv_geom *g, int order);
void eb_bin_horq(eb_pool *pool, const eb_bin_kernels *k, const eb_conv_geom *g, int order, const float *x,
                 const uint64_t *w, const void *packed, int32_t *acc, float *beta, void *scratch);
/* Whether a grouped binary conv runs on the fast kernels (each group whole 64-bit words of input
 * and whole output-channel tiles); otherwise it falls back to ref, which needs the int32 scratch. */
int eb_bin_group_fast(int ic, int oc, int groups, int bits_out);
void eb_bin_pack(eb_pool *pool, const eb_bin_kernels *k, size_t rows, int c, const float *x, const float *thr,
                 uint64_t *y);
void eb_bin_to_bits(eb_pool *pool, const eb_bin_kernels *k, size_t rows, int c, const int32_t *acc, const int32_t *thr,
                    const int32_t *dir, uint64_t *y);
void eb_bin_maxpool(eb_pool *pool, const eb_bin_kernels *k, const eb_conv_geom *g, const uint64_t *x, uint64_t *y);

#endif
