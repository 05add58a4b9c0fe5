/*
 * Packed binary weights for the fast kernels, one layout for every ISA.
 *
 * BIT1 weights [oc][taps][words(ic)] become, per block of 8 output channels,
 * [taps][words(ic)][8]: word k of tap t for the block's 8 channels is 8
 * consecutive words, so one vector load feeds 8 (AVX-512), 4 (AVX2) or 2
 * (NEON) channels and one broadcast input word is xor-ed with all of them.
 * No horizontal sums, and no padding of the reduction axis: a 64-channel
 * 3x3 layer is 9 words per pixel, not a multiple of the vector width.
 *
 * After the blocks: `planes * words(ic)` zero words (the input a padding tap
 * reads) and wsum[tap][ocp] = ic - 2*popcount(w[o][tap]), the contribution of
 * a +1 tap, which zero-padded borders subtract. Channels are padded with zero
 * weights to ocp, a multiple of EB_BPACK_OC_ALIGN.
 */
#ifndef EDGEBNN_BPACK_H
#define EDGEBNN_BPACK_H

#include <stddef.h>
#include <stdint.h>

#define EB_BPACK_OC_ALIGN 32

typedef struct {
  const uint64_t *w;    /* blocks: block b at w + b*bstride */
  const uint64_t *zero; /* planes * wpr zero words */
  const int32_t *wsum;  /* [taps][ocp] */
  size_t wpr, bstride;
  int taps, ocp;
} eb_bpack_view;

static inline int eb_bpack_ocp(int oc) { return (oc + EB_BPACK_OC_ALIGN - 1) / EB_BPACK_OC_ALIGN * EB_BPACK_OC_ALIGN; }
/* Bytes of the packed form (64-byte aligned buffer expected). */
size_t eb_bpack_bytes(int oc, int taps, int ic, int planes);
/* w: BIT1 [oc][taps][words(ic)]. */
void eb_bpack(int oc, int taps, int ic, int planes, const uint64_t *w, void *packed);
eb_bpack_view eb_bpack_view_of(const void *packed, int oc, int taps, int ic, int planes);

#endif
