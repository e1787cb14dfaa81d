"""ModelNet40: the published HDF5 point sets and the raw `.off` / `.ply` meshes, as Datasets.

Two sources, one item format `(points (num_points, 3) float32 tensor, label int64 0-d tensor)`:

- :class:`ModelNetH5` reads the published `modelnet40_ply_hdf5_2048` files (PointNet / DGCNN):
  `ply_data_{train,test}<i>.h5` with `data` [n, 2048, 3] float32, `label` [n, 1] uint8 and an
  optional `normal` [n, 2048, 3]; `train_files.txt` / `test_files.txt` list them. Like DGCNN (and
  the DeepGCNs ModelNet code) an item is the first `num_points` of the 2048 stored points.
- :class:`ModelNetMeshes` reads the raw ModelNet layout `<root>/<class>/{train,test}/<class>_<i>.off`,
  samples `num_points` points per mesh on the surface (area-weighted, normalised to the unit
  sphere) once, and caches them in an npz file so epochs do not resample meshes.

Mesh reading and surface sampling live in `pointseg.data.mesh`, the training augmentation in
`pointseg.data.augment` (:class:`ShapeAugment`); both are re-exported here.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pointseg.data.areas import natural_key
from pointseg.data.augment import ShapeAugment  # re-exported: its home is data.augment
from pointseg.data.mesh import MESH_SUFFIXES, normalize_unit_sphere, read_mesh, sample_surface
from pointseg.errors import DataError
from pointseg.io import atomic_write

MODELNET40_CLASSES: tuple[str, ...] = (
    "airplane", "bathtub", "bed", "bench", "bookshelf", "bottle", "bowl", "car", "chair", "cone",
    "cup", "curtain", "desk", "door", "dresser", "flower_pot", "glass_box", "guitar", "keyboard",
    "lamp", "laptop", "mantel", "monitor", "night_stand", "person", "piano", "plant", "radio",
    "range_hood", "sink", "sofa", "stairs", "stool", "table", "tent", "toilet", "tv_stand", "vase",
    "wardrobe", "xbox",
)  # fmt: skip

__all__ = [
    "MESH_SUFFIXES",
    "MODELNET40_CLASSES",
    "ModelNetH5",
    "ModelNetMeshes",
    "ShapeAugment",
    "normalize_unit_sphere",
    "read_mesh",
    "sample_surface",
]


def _h5_files(root: Path, split: str) -> list[Path]:
    listing = root / f"{split}_files.txt"
    if listing.is_file():
        files = []
        for ln, line in enumerate(listing.read_text().splitlines(), 1):
            if not line.strip():
                continue
            f = root / Path(line.strip()).name
            if not f.is_file():
                raise DataError(f"{listing}:{ln}: lists {line.strip()}, but {f} does not exist")
            files.append(f)
        return files
    found = []
    for p in root.glob(f"ply_data_{split}*.h5"):
        m = re.search(r"(\d+)\.h5$", p.name)
        found.append((int(m.group(1)) if m else -1, p.name, p))
    return [p for *_, p in sorted(found)]


class ModelNetH5(Dataset):
    """The published `modelnet40_ply_hdf5_2048` point sets.

    Args:
        root: folder with `ply_data_{train,test}*.h5` (and `{train,test}_files.txt`).
        split: "train" or "test".
        num_points: first `num_points` of the 2048 stored points per shape (1024 in the paper).
        augment: e.g. :class:`ShapeAugment` for training; None = no augmentation.
        use_normals: append the `normal` dataset as channels 3:6.
        num_classes: labels must be < this (40).

    Item: `(points (num_points, 3 or 6) float32 tensor, label int64 0-d tensor)`.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        num_points: int = 1024,
        augment: ShapeAugment | None = None,
        *,
        use_normals: bool = False,
        num_classes: int = len(MODELNET40_CLASSES),
    ) -> None:
        import h5py

        self.root = Path(root)
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.files = _h5_files(self.root, split)
        if not self.files:
            raise DataError(
                f"no ply_data_{split}*.h5 files in {self.root}: expected the published "
                "modelnet40_ply_hdf5_2048 folder"
            )
        data, labels = [], []
        for f in self.files:
            with h5py.File(f, "r") as h:
                for key in ("data", "label") + (("normal",) if use_normals else ()):
                    if key not in h:
                        raise DataError(f"{f}: missing dataset '{key}' (found {sorted(h.keys())})")
                d = np.asarray(h["data"][...], dtype=np.float32)  # (n, 2048, 3)
                lab = np.asarray(h["label"][...]).reshape(-1).astype(np.int64)  # (n,)
                if d.ndim != 3 or d.shape[2] != 3 or lab.shape[0] != d.shape[0]:
                    raise DataError(
                        f"{f}: expected 'data' [n, P, 3] and 'label' [n, 1], got "
                        f"{d.shape} and {h['label'].shape}"
                    )
                if use_normals:
                    nrm = np.asarray(h["normal"][...], dtype=np.float32)
                    if nrm.shape != d.shape:
                        raise DataError(
                            f"{f}: 'normal' shape {nrm.shape} != 'data' shape {d.shape}"
                        )
                    d = np.concatenate([d, nrm], axis=2)
            if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
                raise DataError(
                    f"{f}: labels must be in 0..{num_classes - 1}, found {lab.min()}..{lab.max()}"
                )
            if d.shape[1] < num_points:
                raise DataError(
                    f"{f}: stores {d.shape[1]} points per shape, fewer than num_points={num_points}"
                )
            data.append(d)
            labels.append(lab)
        self.data = np.concatenate(data)  # (n, P, C)
        self.labels = np.concatenate(labels)  # (n,)
        self.num_points = num_points
        self.augment = augment
        # The published folder names its classes in shape_names.txt (label order).
        names_file = self.root / "shape_names.txt"
        if names_file.is_file():
            names = tuple(n.strip() for n in names_file.read_text().splitlines() if n.strip())
            if len(names) < int(self.labels.max(initial=0)) + 1:
                raise DataError(
                    f"{names_file} lists {len(names)} classes, but labels reach {self.labels.max()}"
                )
            self.classes: tuple[str, ...] | None = names
        else:
            self.classes = MODELNET40_CLASSES if num_classes == len(MODELNET40_CLASSES) else None

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        points = torch.from_numpy(self.data[i, : self.num_points])  # (num_points, C)
        if self.augment is not None:
            points = self.augment(points)
        return points, torch.tensor(self.labels[i], dtype=torch.int64)


def _sample_mesh(job: tuple[Path, str, int, int]) -> np.ndarray:
    """One mesh → (num_points, 3) samples; generator keyed by (seed, path relative to root)."""
    path, rel, num_points, seed = job
    v, faces = read_mesh(path)
    rng = np.random.default_rng([seed, zlib.crc32(rel.encode())])
    try:
        return sample_surface(v, faces, num_points, rng)
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from exc


class ModelNetMeshes(Dataset):
    """Raw ModelNet meshes `<root>/<class>/{train,test}/<class>_<i>.off` (or `.ply`).

    Every mesh is sampled once (`num_points` area-weighted surface points, unit sphere,
    generator keyed by (seed, file path)), and the result is cached in
    `<cache_dir>/modelnet_<split>_<num_points>pts_seed<seed>.npz` (atomic write) so epochs and
    later runs never resample. The cache is rebuilt when the list of files, their sizes or
    modification times change. A read-only `root` with no `cache_dir` just keeps points in memory.

    Args:
        root: ModelNet folder (ModelNet40 or ModelNet10).
        split: "train" or "test".
        num_points: points per shape.
        classes: class names to use, in label order; None = every class folder, sorted
            (for ModelNet40 this is exactly `MODELNET40_CLASSES`).
        augment: e.g. :class:`ShapeAugment` for training.
        seed: sampling seed.
        cache_dir: where to keep the npz cache (default `<root>/.pointseg_cache`); `cache=False`
            disables it.
        workers: processes for the one-off sampling (ModelNet40 has 12,311 meshes).

    Item: `(points (num_points, 3) float32 tensor, label int64 0-d tensor)`.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        num_points: int = 1024,
        classes: Sequence[str] | None = None,
        *,
        augment: ShapeAugment | None = None,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        cache: bool = True,
        progress: bool = True,
        workers: int = 1,
    ) -> None:
        self.root = Path(root)
        self.workers = workers
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if not self.root.is_dir():
            raise DataError(f"ModelNet folder {self.root} does not exist")
        if classes is None:
            classes = sorted(p.name for p in self.root.iterdir() if (p / split).is_dir())
            if not classes:
                raise DataError(
                    f"{self.root}: no class folders with a '{split}' subfolder; expected the "
                    f"ModelNet layout <root>/<class>/{split}/<class>_<i>.off"
                )
        else:
            missing = [c for c in classes if not (self.root / c / split).is_dir()]
            if missing:
                raise DataError(
                    f"{self.root}: missing class folders {[f'{c}/{split}' for c in missing]}"
                )
        self.classes = tuple(classes)
        self.split, self.num_points, self.augment, self.seed = split, num_points, augment, seed

        files, labels = [], []
        for label, c in enumerate(self.classes):
            found = sorted(
                (p for p in (self.root / c / split).iterdir() if p.suffix.lower() in MESH_SUFFIXES),
                key=lambda p: natural_key(p.name),
            )
            files += found
            labels += [label] * len(found)
        if not files:
            raise DataError(f"{self.root}: no .off/.ply meshes under <class>/{split}/")
        self.files = files
        self.labels = np.asarray(labels, dtype=np.int64)
        rel = [str(f.relative_to(self.root)) for f in files]
        stats = [f.stat() for f in files]
        key = hashlib.sha1(
            json.dumps([rel, [s.st_size for s in stats], [s.st_mtime_ns for s in stats]]).encode()
        ).hexdigest()

        cache_path = None
        if cache:
            cache_dir = Path(cache_dir) if cache_dir is not None else self.root / ".pointseg_cache"
            cache_path = cache_dir / f"modelnet_{split}_{num_points}pts_seed{seed}.npz"
        self.points = self._load_cache(cache_path, key)
        if self.points is None:
            self.points = self._sample_all(rel, progress)
            if cache_path is not None:
                try:
                    with atomic_write(cache_path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
                        # A file object: np.savez would append ".npz" to the temp file's name.
                        np.savez(fh, points=self.points, labels=self.labels, key=np.array(key))
                except OSError as exc:
                    warnings.warn(
                        f"could not write the ModelNet cache {cache_path} ({exc}); points stay "
                        "in memory only (pass cache_dir= a writable folder)",
                        stacklevel=2,
                    )

    @staticmethod
    def _load_cache(path: Path | None, key: str) -> np.ndarray | None:
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path) as z:
                if str(z["key"]) != key:
                    return None
                return np.asarray(z["points"], dtype=np.float32)
        except (OSError, KeyError, ValueError):
            return None  # unreadable / stale cache: resample

    def _sample_all(self, rel: list[str], progress: bool) -> np.ndarray:
        from tqdm.auto import tqdm

        jobs = [(f, r, self.num_points, self.seed) for f, r in zip(self.files, rel, strict=True)]
        out = np.empty((len(jobs), self.num_points, 3), dtype=np.float32)
        desc = f"sample ModelNet {self.split}"
        if self.workers > 1 and len(jobs) > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(self.workers) as pool:
                results = pool.map(_sample_mesh, jobs, chunksize=8)
                for i, pts in enumerate(
                    tqdm(results, total=len(jobs), desc=desc, unit="mesh", disable=not progress)
                ):
                    out[i] = pts
            return out
        for i, job in enumerate(tqdm(jobs, desc=desc, unit="mesh", disable=not progress)):
            out[i] = _sample_mesh(job)
        return out

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        points = torch.from_numpy(self.points[i])  # (num_points, 3)
        if self.augment is not None:
            points = self.augment(points)
        return points, torch.tensor(self.labels[i], dtype=torch.int64)
