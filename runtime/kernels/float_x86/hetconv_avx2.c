/* AVX2+FMA build of the fused HetConv kernel (this file alone gets -mavx2 -mfma;
 * hetconv.c calls it only where the CPU has both). */
#define EB_HETCONV_FN eb_hetconv_rows_avx2
#include "float/hetconv_impl.h"
