/* AVX-512 binary kernels for CPUs without VPOPCNTDQ (Skylake-SP, Cascade Lake):
 * popcount by a 16-entry nibble lookup (vpshufb) per byte, counted in bytes over
 * up to EB_VB_STEPS words and only then summed per 64-bit lane with one vpsadbw.
 * Flags for this file only (-mavx512f -mavx512bw -mavx512vl -mavx512dq); kernels.c
 * checks the CPU.
 *
 * Per 8 words of one (pixel, 8 channels) pair: two vpternlogq form the low and
 * the high nibbles of x ^ w (the high ones from x >> 4 and w >> 4, shifted once
 * per broadcast input word and once per weight vector, not per xor), two vpshufb
 * look their counts up, two vpaddb count them: 6 uops, 2 of them on port 5. */
#include <immintrin.h>
#include <stdint.h>

#include "x86/bin_avx512_stage.h"

#define EB_ISA(name) eb_avx512bw_##name
#define EB_VL 8
/* 4 blocks (32 channels) x 4 pixels: 16 byte counters + 4 weight vectors and their
 * high forms + the lookup table, the mask and a broadcast word and its high form fill
 * the 32 zmm registers (measured best of 1..4 blocks x 2..6 pixels on Cascade Lake). */
#define EB_OB 4
#define EB_P 4
typedef __m512i eb_vd;
typedef __m512i eb_va;
typedef __m512i eb_vb;

/* popcounts of the 16 nibble values, in each 128-bit lane (vpshufb looks up per lane) */
#define EB_ZMM_NIBBLE_LUT                                                                                     \
  _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4))

/* ternlog imm8 for (a ^ b) & c and (a & b) & c, from the operand truth tables
 * a = 0xf0, b = 0xcc, c = 0xaa */
#define EB_TL_XOR_AND 0x28 /* (0xf0 ^ 0xcc) & 0xaa */
#define EB_TL_AND_AND 0x80 /* 0xf0 & 0xcc & 0xaa */

static inline __m512i eb_avx512bw_count(__m512i b, __m512i lo, __m512i hi) {
  const __m512i lut = EB_ZMM_NIBBLE_LUT;
  return _mm512_add_epi8(_mm512_add_epi8(b, _mm512_shuffle_epi8(lut, lo)), _mm512_shuffle_epi8(lut, hi));
}

static inline __m512i eb_avx512bw_xor(__m512i b, __m512i x, __m512i xh, __m512i w, __m512i wh) {
  const __m512i m = _mm512_set1_epi8(0x0f);
  return eb_avx512bw_count(b, _mm512_ternarylogic_epi64(x, w, m, EB_TL_XOR_AND),
                           _mm512_ternarylogic_epi64(xh, wh, m, EB_TL_XOR_AND));
}

static inline __m512i eb_avx512bw_and(__m512i b, __m512i x, __m512i xh, __m512i w, __m512i wh) {
  const __m512i m = _mm512_set1_epi8(0x0f);
  return eb_avx512bw_count(b, _mm512_ternarylogic_epi64(x, w, m, EB_TL_AND_AND),
                           _mm512_ternarylogic_epi64(xh, wh, m, EB_TL_AND_AND));
}

#define EB_VA_ZERO() _mm512_setzero_si512()
#define EB_VD_LOAD(p) _mm512_loadu_si512((const void *)(p))
#define EB_VD_BCAST(u) _mm512_set1_epi64((long long)(u))
#define EB_VB_STEPS 31 /* 31 * 8 = 248 < 256 */
#define EB_VB_ZERO() _mm512_setzero_si512()
#define EB_VD_HI(v) _mm512_srli_epi16((v), 4) /* bits from the next byte up are masked off in EB_VB_XOR */
#define EB_VB_XOR(b, x, xh, w, wh) eb_avx512bw_xor((b), (x), (xh), (w), (wh))
#define EB_VB_AND(b, x, xh, w, wh) eb_avx512bw_and((b), (x), (xh), (w), (wh))
#define EB_VA_ADDB(a, b) _mm512_add_epi64((a), _mm512_sad_epu8((b), _mm512_setzero_si512()))

#include "portable/bin_impl.h"
