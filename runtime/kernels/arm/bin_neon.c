/* NEON binary kernels for aarch64 (baseline) and armv7 (this file alone is built
 * with -mfpu=neon; kernels.c checks HWCAP_NEON first, since Debian armhf's
 * baseline has none). vcnt counts bits per byte; vpadal folds byte pairs into
 * 16-bit lanes, which hold at most 16 per word: flushed every 4095 words. */
#include <arm_neon.h>
#include <stdint.h>

#define EB_ISA(name) eb_neon_##name
#define EB_VL 2
#define EB_OB 1
#if defined(__aarch64__)
#define EB_P 4 /* 32 q registers: 16 accumulators + 4 weights + broadcast */
#else
#define EB_P 2 /* 16 q registers on armv7 */
#endif
typedef uint64x2_t eb_vd;
typedef uint16x8_t eb_va;

static inline void eb_neon_flush(uint16x8_t a, uint32_t *dst) {
  const uint64x2_t s = vpaddlq_u32(vpaddlq_u16(a));
  dst[0] += (uint32_t)vgetq_lane_u64(s, 0);
  dst[1] += (uint32_t)vgetq_lane_u64(s, 1);
}

#if defined(__aarch64__)
/* Thresholded output bits of the 2 lanes (bin_impl.h conv_tile): lane count > lim,
 * signed 64-bit (aarch64 has the 64-bit compare; armv7 takes the flush path). */
static inline unsigned eb_neon_gt(uint16x8_t a, uint64x2_t lim) {
  const uint64x2_t s = vpaddlq_u32(vpaddlq_u16(a));
  const uint64x2_t m = vcgtq_s64(vreinterpretq_s64_u64(s), vreinterpretq_s64_u64(lim));
  return (unsigned)(vgetq_lane_u64(m, 0) & 1u) | (unsigned)(vgetq_lane_u64(m, 1) & 2u);
}
#define EB_VA_GT(a, lim) eb_neon_gt((a), (lim))
#endif

#define EB_VA_ZERO() vdupq_n_u16(0)
#define EB_VD_LOAD(p) vld1q_u64(p)
#define EB_VD_BCAST(u) vdupq_n_u64(u)
#define EB_VA_XOR(a, x, w) vpadalq_u8((a), vcntq_u8(vreinterpretq_u8_u64(veorq_u64((x), (w)))))
#define EB_VA_AND(a, x, w) vpadalq_u8((a), vcntq_u8(vreinterpretq_u8_u64(vandq_u64((x), (w)))))
#define EB_VA_FLUSH(a, dst) eb_neon_flush((a), (dst))
#define EB_MAX_STEPS ((size_t)4095)

#include "portable/bin_impl.h"
