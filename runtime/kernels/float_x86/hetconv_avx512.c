/* AVX-512 build of the fused HetConv kernel: one 16-float vector per filter block
 * and 8 pixels per tile (8 of the 32 zmm registers accumulate). This file alone gets
 * -mavx512f -mfma; hetconv.c calls it only where the CPU has AVX-512F. */
#define EB_HC_VW 16
#define EB_HC_MR 8
#define EB_HETCONV_FN eb_hetconv_rows_avx512
#include "float/hetconv_impl.h"
