#include "bpack.h"

#include <string.h>

#include "ref/ref.h"

static int pc64(uint64_t v) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_popcountll((unsigned long long)v);
#else
  int n = 0;
  for (; v; v &= v - 1) n++;
  return n;
#endif
}

static size_t blocks_words(int ocp, int taps, size_t wpr) { return (size_t)ocp * (size_t)taps * wpr; }

size_t eb_bpack_bytes(int oc, int taps, int ic, int planes) {
  const int ocp = eb_bpack_ocp(oc);
  const size_t wpr = eb_words((size_t)ic);
  return (blocks_words(ocp, taps, wpr) + (size_t)planes * wpr) * sizeof(uint64_t) +
         (size_t)taps * (size_t)ocp * sizeof(int32_t);
}

eb_bpack_view eb_bpack_view_of(const void *packed, int oc, int taps, int ic, int planes) {
  eb_bpack_view v;
  v.ocp = eb_bpack_ocp(oc);
  v.taps = taps;
  v.wpr = eb_words((size_t)ic);
  v.bstride = (size_t)taps * v.wpr * 8;
  v.w = (const uint64_t *)packed;
  v.zero = v.w + blocks_words(v.ocp, taps, v.wpr);
  v.wsum = (const int32_t *)(v.zero + (size_t)planes * v.wpr);
  return v;
}

void eb_bpack(int oc, int taps, int ic, int planes, const uint64_t *w, void *packed) {
  const int ocp = eb_bpack_ocp(oc);
  const size_t wpr = eb_words((size_t)ic), bstride = (size_t)taps * wpr * 8;
  uint64_t *dst = (uint64_t *)packed;
  memset(packed, 0, eb_bpack_bytes(oc, taps, ic, planes));
  int32_t *wsum = (int32_t *)(dst + blocks_words(ocp, taps, wpr) + (size_t)planes * wpr);
  for (int o = 0; o < oc; o++) {
    uint64_t *blk = dst + (size_t)(o / 8) * bstride + (size_t)(o % 8);
    for (int t = 0; t < taps; t++) {
      const uint64_t *src = w + ((size_t)o * (size_t)taps + (size_t)t) * wpr;
      int pc = 0;
      for (size_t k = 0; k < wpr; k++) {
        blk[((size_t)t * wpr + k) * 8] = src[k];
        pc += pc64(src[k]);
      }
      wsum[(size_t)t * (size_t)ocp + (size_t)o] = ic - 2 * pc;
    }
  }
}
