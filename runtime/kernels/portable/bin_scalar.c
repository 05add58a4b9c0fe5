/* Fast binary kernels on plain 64-bit integers, built with the target's default
 * flags: runs on any CPU (armv7 without NEON, x86-64 without POPCNT), and is the
 * scalar instantiation of the shared body. */
#define EB_ISA(name) eb_scalar_##name
#include "portable/bin_scalar.h"
