/* Internal structures shared by the loader, the planner, the op layer and sessions. */
#ifndef EDGEBNN_INTERNAL_H
#define EDGEBNN_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "edgebnn.h"
#include "format.h"
#include "parallel.h"

#define EB_MAX_OP_INPUTS 8
#define EB_ARENA_ALIGN 64
/* Bytes past the last arena block that must stay readable: XNNPACK's SIMD loads may
 * read up to XNN_EXTRA_BYTES (16) past an input's end. Inside the arena such reads
 * land in a neighbouring block, which is harmless; past its end they need this. */
#define EB_ARENA_READ_SLACK 64

/* Which code runs a node, decided at load so a model can report it. */
enum { EB_BACKEND_REF = 0, EB_BACKEND_BINARY, EB_BACKEND_XNNPACK, EB_BACKEND_HETCONV_FUSED, EB_BACKEND_Q8, EB_BACKEND_BAND };

typedef struct {
  const char *name;
  eb_dtype dtype;
  int ndim;
  int64_t dims[EB_MAX_DIMS];
  size_t count;  /* elements */
  size_t nbytes; /* storage bytes (BIT1 rows padded to words) */
  int quant_kind;
  int quant_axis;
  float scale;
  int32_t zero_point;
  uint32_t scales_tensor, zero_points_tensor;
  eb_layout io_layout;
  const void *data; /* constants: in the mapped file */
  /* activations */
  int producer;     /* op index, -1 for graph inputs */
  int last_use;     /* op index of last reader (n_ops for graph outputs) */
  size_t arena_offset;
  int alias; /* >= 0: shares that tensor's arena bytes (an in-place fused ADD, fuse.c); else -1 */
} eb_tensor;

/* Every attribute an op may carry, parsed and validated once at load. */
typedef struct {
  int strides[2], dilations[2], pads[4], kernel[2], perm[EB_MAX_DIMS];
  int groups, pad_value, activation, axis, bits, order, part, count_include_pad, rounding;
  float clamp[2], step;
  float out_min, out_max; /* from activation or clamp */
} eb_params;

typedef struct {
  int type;
  const char *name;
  int n_in;
  int32_t in[EB_MAX_OP_INPUTS]; /* -1: optional input absent */
  int32_t out;
  eb_params p;
  size_t scratch_bytes;
  size_t scratch_offset;
  int backend; /* EB_BACKEND_* */
  /* Load-time fusion (fuse.c): a skipped node's work is done by a later node; an ADD
   * with fused_conv >= 0 runs that binary conv with itself as the epilogue, and
   * writes the output of SIGN_PACK node fused_sign (>= 0) as well; fused_clamp and
   * fused_affine (>= 0): a RELU/RELU6/HARDTANH and an AFFINE between the conv and the ADD. */
  int skipped;
  int fused_conv, fused_sign, fused_clamp, fused_affine;
  int fused_res; /* the ADD's input that is the shortcut (a tensor) */
  /* A MAX_POOL2D with band_conv >= 0 runs that (skipped) float conv in bands of band_rows
   * of its own output rows, and SIGN_PACK fused_sign too when >= 0 (band.c) */
  int band_conv, band_rows;
} eb_node;

struct eb_model {
  /* file bytes: mapped, owned copy, or borrowed */
  const uint8_t *base;
  size_t size;
  void *map;       /* munmap on free when not NULL */
  void *owned;     /* free on free when not NULL */
  void *strings;   /* mapped files: a copy of the string section, which names point into */
  eb_tensor *tensors;
  int n_tensors;
  eb_node *nodes;
  int n_nodes;
  int32_t *inputs, *outputs;
  int n_inputs, n_outputs;
  const char **meta_keys, **meta_values;
  int n_meta;
  size_t arena_bytes;
  size_t weight_bytes;
  /* binary kernel variant, picked at load: the fusion and the arena plan depend on it */
  const struct eb_bin_kernels_s *bk;
};

struct eb_session {
  const eb_model *model;
  eb_session_options options;
  uint8_t *arena; /* arena_raw, aligned to EB_ARENA_ALIGN */
  void *arena_raw;
  void **ptr; /* per tensor: constant data or its place in the arena */
  eb_pool *pool; /* NULL when single-threaded */
  const struct eb_bin_kernels_s *bk; /* binary kernel variant, picked at creation */
  void **bpacked; /* per node: its binary weights repacked for bk (bin_ops.c), or NULL */
  /* per node, made once at session creation: an XNNPACK operator set up on this
   * arena, or weights packed for a fused kernel */
  void **xnn_op;
  float **packed;
  void **q8op; /* int8 layers on the q8 backend: packed weights and plans (q8_ops.c) */
  void **band; /* banded conv -> max pool nodes: their per-band operators (band.c) */
  float *zero_row; /* read by fused kernels in place of padding */
  void *consts; /* copies of the small constants kernels read at run time (session.c), or NULL */
};

/* Fill err (if any) with a formatted one-line message; returns status. */
eb_status eb_fail(eb_error *err, eb_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ops.c */
const char *eb_op_type_name(int type);
/* Check dtypes, shapes and attributes of a node; compute its scratch size. */
eb_status eb_op_check(const eb_model *m, eb_node *node, eb_error *err);
void eb_op_run(const eb_session *s, const eb_node *node);
/* Per-session state of a node (XNNPACK operator, packed weights); freed by the session. */
eb_status eb_op_prepare(eb_session *s, const eb_node *node, eb_error *err);
const char *eb_op_backend(const eb_model *m, const eb_node *node);

/* fuse.c: with the fast binary kernels, fold ADD (+ SIGN_PACK) into the float
 * epilogue of the binary conv before them and drop the int32 scratch only ref uses.
 * Runs after every node is checked and before the arena is planned. */
void eb_fuse_graph(eb_model *m);

/* pages.c: let the kernel reclaim the resident pages of [data, data+bytes) of a mapped
 * model file (whole pages only); a no-op for models loaded from a buffer. */
void eb_model_drop_pages(const eb_model *m, const void *data, size_t bytes);

/* plan.c: place activations and scratch in one arena by lifetime. */
eb_status eb_plan_arena(eb_model *m, eb_error *err);

size_t eb_dtype_size(eb_dtype dtype);

#endif
