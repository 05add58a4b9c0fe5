/* Run-time kernel pick from what the CPU reports, so one library binary runs
 * everywhere and still uses AVX-512/AVX2/POPCNT/NEON where they exist.
 * Stateless on purpose: no lazy init to race on when two threads load models. */
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

#if defined(EB_HAVE_NEON_KERNELS) && defined(__arm__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_NEON
#define HWCAP_NEON (1 << 12) /* asm/hwcap.h on 32-bit ARM */
#endif
#endif

#define VARIANT(isa, label)                                                                                   \
  {label,                   1,                         eb_##isa##_bconv_tile, eb_##isa##_kbit_tile,              \
   eb_##isa##_horq_tile,    eb_##isa##_pack_f32,       eb_##isa##_acc_to_bits, eb_##isa##_bmaxpool_tile,         \
   eb_##isa##_maxpool_f32_tile}

/* Best last. ref is never picked unless forced, but it heads the list as the oracle. */
static const eb_bin_kernels ALL[] = {
    {"ref", 0, NULL, NULL, NULL, eb_ref_pack_f32, eb_ref_acc_to_bits, NULL, NULL},
    VARIANT(scalar, "scalar"),
#if defined(EB_HAVE_X86_KERNELS)
    VARIANT(popcnt, "popcnt"),
    VARIANT(avx2, "avx2"),
    VARIANT(avx512bw, "avx512bw"),
    VARIANT(avx512, "avx512"),
#endif
#if defined(EB_HAVE_NEON_KERNELS)
    VARIANT(neon, "neon"),
#endif
};
#define N_ALL ((int)(sizeof ALL / sizeof ALL[0]))

static int cpu_has(const char *name) {
#if defined(EB_HAVE_X86_KERNELS)
  /* libgcc fills the CPU model in a constructor; these only read it */
  if (!strcmp(name, "popcnt")) return __builtin_cpu_supports("popcnt");
  if (!strcmp(name, "avx2")) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
  /* avx512bw: AVX-512 without a vector popcount (Skylake-SP, Cascade Lake); avx512 adds VPOPCNTDQ */
  if (!strcmp(name, "avx512bw"))
    return cpu_has("avx2") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (!strcmp(name, "avx512")) return cpu_has("avx512bw") && __builtin_cpu_supports("avx512vpopcntdq");
#endif
#if defined(EB_HAVE_NEON_KERNELS)
  if (!strcmp(name, "neon")) {
#if defined(__aarch64__)
    return 1; /* baseline on aarch64 */
#elif defined(__arm__) && defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_NEON) != 0;
#else
    return 0;
#endif
  }
#endif
  return !strcmp(name, "ref") || !strcmp(name, "scalar");
}

/* Each x86 variant needs strictly more than the one before it (and neon
 * stands alone), so what a CPU can run is a prefix of ALL: stop at the first
 * variant it lacks. */
const eb_bin_kernels *eb_kernels_list(int *count) {
  int n = 0;
  while (n < N_ALL && cpu_has(ALL[n].name)) n++;
  *count = n;
  return ALL;
}

const eb_bin_kernels *eb_kernels_best(void) {
  int n;
  const eb_bin_kernels *ks = eb_kernels_list(&n);
  const char *force = getenv("EDGEBNN_KERNELS");
  if (force)
    for (int i = 0; i < n; i++)
      if (!strcmp(force, ks[i].name)) return &ks[i];
  return &ks[n - 1];
}
