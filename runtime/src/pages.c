/* Resident pages of a mapped model file that no kernel reads any more. A session repacks
 * binary weights into the fast kernels' layout once (bin_ops.c); the file's copy of them
 * is then only touched again by another session's repacking. Dropping those pages halves
 * the resident size of a binary model; the mapping is private and read-only, so a later
 * read simply faults the same bytes back in from the file. */
#define _DEFAULT_SOURCE 1 /* madvise, with the build's _POSIX_C_SOURCE */

#include <stdint.h>

#include "internal.h"

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

void eb_model_drop_pages(const eb_model *m, const void *data, size_t bytes) {
#if defined(__linux__) && defined(MADV_DONTNEED)
  if (!m->map || !data || !bytes) return;
  const long ps = sysconf(_SC_PAGESIZE);
  if (ps <= 0) return;
  /* whole pages inside the range only: its neighbours may still be read */
  const uintptr_t p = (uintptr_t)data, mask = (uintptr_t)ps - 1;
  const uintptr_t a = (p + mask) & ~mask, b = (p + bytes) & ~mask;
  if (b > a) (void)madvise((void *)a, b - a, MADV_DONTNEED);
#else
  (void)m, (void)data, (void)bytes;
#endif
}
