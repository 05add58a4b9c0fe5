/*
 * Reference elementwise ops, data movement and int8 (de)quantization.
 */
#include <math.h>
#include <string.h>

#include "ref.h"

static float clampf(float v, float lo, float hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

void eb_ref_add_f32(size_t count, const float *a, const float *b,
                    float out_min, float out_max, float *y) {
  for (size_t i = 0; i < count; ++i) y[i] = clampf(a[i] + b[i], out_min, out_max);
}

void eb_ref_clamp_f32(size_t count, const float *x, float lo, float hi,
                      float *y) {
  for (size_t i = 0; i < count; ++i) y[i] = clampf(x[i], lo, hi);
}

void eb_ref_prelu_f32(size_t rows, int c, const float *x, const float *slope,
                      float *y) {
  for (size_t r = 0; r < rows; ++r) {
    for (int j = 0; j < c; ++j) {
      const size_t i = r * (size_t)c + (size_t)j;
      y[i] = x[i] >= 0.0f ? x[i] : slope[j] * x[i];
    }
  }
}

void eb_ref_affine_f32(size_t rows, int c, const float *x, const float *scale,
                       const float *bias, float out_min, float out_max,
                       float *y) {
  for (size_t r = 0; r < rows; ++r) {
    for (int j = 0; j < c; ++j) {
      const size_t i = r * (size_t)c + (size_t)j;
      const float s = scale ? scale[j] : 1.0f;
      const float b = bias ? bias[j] : 0.0f;
      y[i] = clampf(x[i] * s + b, out_min, out_max);
    }
  }
}

void eb_ref_softmax_f32(size_t rows, int c, const float *x, float *y) {
  for (size_t r = 0; r < rows; ++r) {
    const float *xr = x + r * (size_t)c;
    float *yr = y + r * (size_t)c;
    if (c <= 0) continue;
    float m = xr[0];
    for (int j = 1; j < c; ++j)
      if (xr[j] > m) m = xr[j];
    float s = 0.0f;
    for (int j = 0; j < c; ++j) {
      yr[j] = expf(xr[j] - m);
      s += yr[j];
    }
    for (int j = 0; j < c; ++j) yr[j] = yr[j] / s;
  }
}

void eb_ref_transpose(int ndim, const uint32_t *in_dims, const int *perm,
                      size_t elem_size, const void *x, void *y) {
  size_t in_stride[6], out_dims[6], src_stride[6], idx[6];
  size_t count = 1;
  /* Strides of the input, in elements. */
  for (int i = ndim - 1; i >= 0; --i) {
    in_stride[i] = count;
    count *= (size_t)in_dims[i];
  }
  /* Output axis i walks input axis perm[i]. */
  for (int i = 0; i < ndim; ++i) {
    out_dims[i] = (size_t)in_dims[perm[i]];
    src_stride[i] = in_stride[perm[i]];
    idx[i] = 0;
  }
  const unsigned char *src = (const unsigned char *)x;
  unsigned char *dst = (unsigned char *)y;
  size_t off = 0; /* input offset of the current output element */
  for (size_t e = 0; e < count; ++e) {
    memcpy(dst + e * elem_size, src + off * elem_size, elem_size);
    /* Advance the output multi-index (last axis fastest). */
    for (int i = ndim - 1; i >= 0; --i) {
      if (++idx[i] < out_dims[i]) {
        off += src_stride[i];
        break;
      }
      off -= (out_dims[i] - 1) * src_stride[i];
      idx[i] = 0;
    }
  }
}

void eb_ref_channel_shuffle(size_t rows, int c, int groups, size_t elem_size,
                            const void *x, void *y) {
  const int cpg = c / groups; /* channels per group */
  const size_t row_bytes = (size_t)c * elem_size;
  for (size_t r = 0; r < rows; ++r) {
    const unsigned char *xr = (const unsigned char *)x + r * row_bytes;
    unsigned char *yr = (unsigned char *)y + r * row_bytes;
    for (int j = 0; j < groups; ++j)
      for (int k = 0; k < cpg; ++k)
        memcpy(yr + ((size_t)k * (size_t)groups + (size_t)j) * elem_size,
               xr + ((size_t)j * (size_t)cpg + (size_t)k) * elem_size,
               elem_size);
  }
}

void eb_ref_concat(int n_in, size_t outer, const size_t *inner_bytes,
                   const void *const *xs, void *y) {
  unsigned char *dst = (unsigned char *)y;
  for (size_t r = 0; r < outer; ++r) {
    for (int i = 0; i < n_in; ++i) {
      const size_t nb = inner_bytes[i];
      if (nb == 0) continue;
      memcpy(dst, (const unsigned char *)xs[i] + r * nb, nb);
      dst += nb;
    }
  }
}

void eb_ref_quantize_i8(size_t count, const float *x, float scale, int32_t zp,
                        int8_t *y) {
  /* round(x / scale) half away from zero, written without roundf so the loop vectorizes:
   * |r| is first clamped (every code beyond +-512 clips to the same int8), then truncated,
   * and the exact remainder r - trunc(r) decides the rounding. NaN quantizes like 0. */
  for (size_t i = 0; i < count; ++i) {
    float r = x[i] / scale;
    r = r > 512.0f ? 512.0f : r;
    r = r < -512.0f ? -512.0f : r;
    r = r == r ? r : 0.0f;
    int32_t t = (int32_t)r;
    const float f = r - (float)t;
    t += (f >= 0.5f) - (f <= -0.5f);
    t += zp;
    t = t < -128 ? -128 : t;
    t = t > 127 ? 127 : t;
    y[i] = (int8_t)t;
  }
}

void eb_ref_dequantize_i8(size_t outer, int channels, size_t inner,
                          const int8_t *x, const float *scale,
                          const int32_t *zp, float *y) {
  for (size_t o = 0; o < outer; ++o) {
    for (int ch = 0; ch < channels; ++ch) {
      const size_t base = (o * (size_t)channels + (size_t)ch) * inner;
      const float s = scale[ch];
      const int64_t z = zp ? (int64_t)zp[ch] : 0;
      for (size_t i = 0; i < inner; ++i)
        y[base + i] = (float)((int64_t)x[base + i] - z) * s;
    }
  }
}

void eb_ref_abs_f32(size_t count, const float *x, float *y) {
  for (size_t i = 0; i < count; ++i) y[i] = fabsf(x[i]);
}

void eb_ref_channel_mean_f32(size_t rows, int c, const float *x, float *y) {
  for (size_t r = 0; r < rows; ++r) {
    const float *xr = x + r * (size_t)c;
    float sum = 0.0f;
    for (int i = 0; i < c; ++i) sum += xr[i];
    y[r] = sum / (float)c;
  }
}

void eb_ref_mul_f32(size_t rows, int c, const float *a, const float *b, int per_row, float *y) {
  for (size_t r = 0; r < rows; ++r)
    for (int i = 0; i < c; ++i) {
      const size_t k = r * (size_t)c + (size_t)i;
      y[k] = a[k] * (per_row ? b[r] : b[k]);
    }
}
