/*
 * Kernel selection: one table of binary-kernel entry points per variant, all
 * with the contract of the eb_ref_* kernels in ref/ref.h, and the run-time pick
 * of the best one this CPU can execute. The op layer calls through
 * eb_kernels_best(); tests walk eb_kernels_list() and compare each entry with ref.
 */
#ifndef EDGEBNN_KERNELS_H
#define EDGEBNN_KERNELS_H

#include "ref/ref.h"

typedef struct {
  const char *name; /* reported by eb_op_backend: "ref", "portable", "popcnt" */
  void (*bconv2d_acc)(const eb_conv_geom *g, int pad_value, const uint64_t *x, const uint64_t *w, int32_t *acc);
  void (*bfc_acc)(int n, int k, int o, const uint64_t *x, const uint64_t *w, int32_t *acc);
} eb_bin_kernels;

/* Variants this CPU can run, best last; ref is always first. Sets *count. */
const eb_bin_kernels *eb_kernels_list(int *count);
/* The best variant; EDGEBNN_KERNELS=ref (environment) forces the reference. */
const eb_bin_kernels *eb_kernels_best(void);

/* The variants themselves (declared here so tests can name them). */
void eb_fast_bconv2d_acc(const eb_conv_geom *g, int pad_value, const uint64_t *x, const uint64_t *w, int32_t *acc);
void eb_fast_bfc_acc(int n, int k, int o, const uint64_t *x, const uint64_t *w, int32_t *acc);
#if defined(EB_HAVE_X86_POPCNT)
void eb_popcnt_bconv2d_acc(const eb_conv_geom *g, int pad_value, const uint64_t *x, const uint64_t *w, int32_t *acc);
void eb_popcnt_bfc_acc(int n, int k, int o, const uint64_t *x, const uint64_t *w, int32_t *acc);
#endif

#endif /* EDGEBNN_KERNELS_H */
