/* Run-time kernel pick from what the CPU reports, so one library binary runs
 * everywhere and still uses POPCNT where it exists. Stateless on purpose: no
 * lazy init to race on when two threads load models at once. */
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

static const eb_bin_kernels ALL[] = {
    {"ref", eb_ref_bconv2d_acc, eb_ref_bfc_acc},
    {"portable", eb_fast_bconv2d_acc, eb_fast_bfc_acc},
#if defined(EB_HAVE_X86_POPCNT)
    {"popcnt", eb_popcnt_bconv2d_acc, eb_popcnt_bfc_acc},
#endif
};

static int n_usable(void) {
#if defined(EB_HAVE_X86_POPCNT)
  /* libgcc fills the CPU model in a constructor; this only reads it */
  if (!__builtin_cpu_supports("popcnt")) return 2;
#endif
  return (int)(sizeof ALL / sizeof ALL[0]);
}

const eb_bin_kernels *eb_kernels_list(int *count) {
  *count = n_usable();
  return ALL;
}

const eb_bin_kernels *eb_kernels_best(void) {
  const char *force = getenv("EDGEBNN_KERNELS");
  if (force && !strcmp(force, "ref")) return &ALL[0];
  return &ALL[n_usable() - 1];
}
