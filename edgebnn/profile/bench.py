"""Finding (or building) the edgebnn-bench binary for a board's architecture.

Looked for, in order:
  1. --bench PATH
  2. $EDGEBNN_BENCH_<ARCH> (e.g. EDGEBNN_BENCH_AARCH64)
  3. the wheel: edgebnn/_bin/edgebnn-bench (this machine's arch) and edgebnn-bench-<arch>,
     cross-built at install time for every ARM target whose cross compiler was present
  4. a cache of earlier builds: $XDG_CACHE_HOME/edgebnn/bench/<version>/<arch>/edgebnn-bench
  5. a build from a source checkout with runtime/cmake/<triple>.cmake, into that cache
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

from .. import __version__
from ..devices import normalize_arch
from ..errors import UserError

TOOLCHAINS = {"aarch64": "aarch64-linux-gnu", "armv7": "arm-linux-gnueabihf"}


def _cache_dir(arch: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgebnn" / "bench" / __version__ / arch


def _source_root() -> Path | None:
    root = Path(__file__).resolve().parents[2]
    return root if (root / "runtime" / "bench" / "edgebnn_bench.c").exists() else None


def candidates(arch: str) -> list[Path]:
    out = []
    env = os.environ.get(f"EDGEBNN_BENCH_{arch.upper()}")
    if env:
        out.append(Path(env))
    pkg = Path(__file__).resolve().parents[1] / "_bin"
    if arch == normalize_arch(platform.machine()):
        out.append(pkg / "edgebnn-bench")
    out += [pkg / f"edgebnn-bench-{arch}", _cache_dir(arch) / "edgebnn-bench"]
    return out


def build(arch: str, triple: str, progress=None) -> Path:
    """Cross-build the bench with the cmake toolchain file for `triple` (a source checkout only)."""
    src = _source_root()
    toolchain = src / "runtime" / "cmake" / f"{triple}.cmake" if src and triple else None
    why = None
    if not src:
        why = "this install has no runtime sources to build it from"
    elif not toolchain or not toolchain.exists():
        why = f"there is no cmake toolchain file runtime/cmake/{triple or '<triple>'}.cmake"
    elif not shutil.which(f"{triple}-gcc"):
        why = f"the cross compiler {triple}-gcc is not installed (Debian/Ubuntu: apt install gcc-{triple})"
    elif not shutil.which("cmake"):
        why = "cmake is not installed"
    if why:
        raise UserError(f"no edgebnn-bench for {arch}: {why}; build one "
                        f"(cmake -DCMAKE_TOOLCHAIN_FILE=runtime/cmake/{triple or '<triple>'}.cmake, target edgebnn-bench) "
                        "and pass --bench PATH")
    out = _cache_dir(arch)
    work = out.parent / f"build-{arch}"
    if progress:
        progress(f"building edgebnn-bench for {arch} with {triple}-gcc (once; cached in {out})")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    for cmd in (["cmake", "-S", str(src), "-B", str(work), *gen, f"-DCMAKE_TOOLCHAIN_FILE={toolchain}",
                 "-DCMAKE_BUILD_TYPE=Release", "-DEDGEBNN_BENCH_STATIC=ON"],
                ["cmake", "--build", str(work), "--target", "edgebnn-bench", "-j2"]):
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["?"]
            raise UserError(f"building edgebnn-bench for {arch} failed: {tail[0]} (run `{' '.join(cmd)}` to see why)")
    out.mkdir(parents=True, exist_ok=True)
    dst = out / "edgebnn-bench"
    shutil.copy2(work / "runtime" / "bench" / "edgebnn-bench", dst)
    return dst


def find_bench(arch: str, triple: str = "", explicit: Path | None = None, progress=None) -> Path:
    if explicit is not None:
        if not explicit.is_file():
            raise UserError(f"--bench {explicit} does not exist")
        return explicit
    for p in candidates(arch):
        if p.is_file():
            return p
    return build(arch, triple or TOOLCHAINS.get(arch, ""), progress)
