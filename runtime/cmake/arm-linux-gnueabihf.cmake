# Cross-compile for 32-bit ARMv7 Linux (hard float) with Debian's
# arm-linux-gnueabihf-gcc. This is the 32-bit target: size_t is 32 bits here,
# which the loader must handle. Tests run under qemu-user via ctest
# (apt: gcc-arm-linux-gnueabihf qemu-user).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7)
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
# Debian armhf baseline (no NEON): only kernels/arm/bin_neon.c gets -mfpu=neon, and
# kernels.c checks HWCAP_NEON before using it.
set(CMAKE_C_FLAGS_INIT "-march=armv7-a -mfpu=vfpv3-d16 -mfloat-abi=hard")
set(EDGEBNN_SYSROOT /usr/arm-linux-gnueabihf)
set(CMAKE_FIND_ROOT_PATH ${EDGEBNN_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm -L ${EDGEBNN_SYSROOT})
