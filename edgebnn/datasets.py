"""MNIST and Fashion-MNIST from their IDX files, found on disk (never downloaded).

Where a dataset is looked for: only the --data-dir given (or its <name>
subfolder) when there is one; otherwise $EDGEBNN_DATA/<name>, then
../shared/data/<name> beside the project checkout (and beside the working
directory), then the Debian package's /usr/share/datasets/<name>
(`apt-get install dataset-fashion-mnist`).
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DATASETS = ("mnist", "fashion-mnist")
CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}
_REPO_ROOT = Path(__file__).resolve().parents[1]

# IDX type codes -> numpy dtypes (big-endian, as the format stores them).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DatasetNotFound(FileNotFoundError):
    pass


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (gzip or plain) from its own header: magic 0 0 type ndim, dims."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", count=ndim, offset=4).astype(int)
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    data = np.frombuffer(raw, dtype, count=int(np.prod(dims)), offset=4 + 4 * ndim)
    return data.reshape(dims).astype(dtype.newbyteorder("="))


def candidate_dirs(name: str, data_dir: str | Path | None = None) -> list[Path]:
    # A folder the user names is the only place looked at: silently training
    # on some other copy would be worse than an error.
    if data_dir is not None:
        return [Path(data_dir), Path(data_dir) / name]
    dirs = []
    if os.environ.get("EDGEBNN_DATA"):
        dirs.append(Path(os.environ["EDGEBNN_DATA"]) / name)
    dirs += [
        _REPO_ROOT.parent / "shared" / "data" / name,
        Path.cwd().parent / "shared" / "data" / name,
        Path("/usr/share/datasets") / name,
    ]
    return dirs


def _split_paths(folder: Path, split: str) -> tuple[Path, Path] | None:
    paths = []
    for stem in SPLIT_FILES[split]:
        found = [folder / f"{stem}{ext}" for ext in (".gz", "") if (folder / f"{stem}{ext}").exists()]
        if not found:
            return None
        paths.append(found[0])
    return paths[0], paths[1]


def find_split(name: str, split: str, data_dir: str | Path | None = None) -> tuple[Path, Path]:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; use one of {DATASETS}")
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    tried = candidate_dirs(name, data_dir)
    for folder in tried:
        paths = _split_paths(folder, split)
        if paths:
            return paths
    hint = " (apt-get install dataset-fashion-mnist)" if name == "fashion-mnist" else ""
    raise DatasetNotFound(
        f"{name} {split} IDX files not found in: {', '.join(map(str, tried))}; pass --data-dir{hint}"
    )


def load_split(name: str, split: str, data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels uint8 [N])."""
    images_path, labels_path = find_split(name, split, data_dir)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if len(images) != len(labels):
        raise ValueError(f"{images_path}: {len(images)} images but {len(labels)} labels")
    return images, labels
