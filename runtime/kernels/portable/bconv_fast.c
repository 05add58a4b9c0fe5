/* Fast binary conv/FC built with the target's default flags: runs on any CPU
 * (the popcount is whatever the baseline ISA offers). */
#define EB_FAST(name) eb_fast_##name
#include "bconv_fast_impl.h"
