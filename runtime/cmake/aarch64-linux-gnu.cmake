# Cross-compile for 64-bit ARM Linux with Debian's aarch64-linux-gnu-gcc.
# Tests run under qemu-user: ctest prefixes every test with the emulator below,
# so `ctest` works unchanged on an x86 host (apt: gcc-aarch64-linux-gnu qemu-user).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(EDGEBNN_SYSROOT /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH ${EDGEBNN_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# -L: where qemu finds the target's dynamic loader and libc.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L ${EDGEBNN_SYSROOT})
