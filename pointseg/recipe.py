"""Input recipes: which per-point features a checkpoint's model was trained on, read from the
checkpoint, so `pointseg eval` / `predict` / `view` feed every model what it expects (never a
constant).

A point-cloud segmentation model sees 1 m × 1 m blocks of `num_point` points with nine channels
(DESIGN §3/§4). Models agree on the channels but not on every detail of how they were made, and a
model fed another recipe loses accuracy silently. The recipe names:

- ``channels``: the nine channel names, in order (`S3DIS_CHANNELS`); a model that needs channels
  pointseg cannot make (normals, intensity, other orders) is refused with one clear message.
- ``block_size``, ``num_point``, ``min_points``: the block recipe.
- ``centering``: the x, y frame of a block sample (`pointseg.data.blocks.CENTERINGS`): ours is
  "points" (min over the block's points + block_size / 2); models trained on PointNet's published
  HDF5 blocks (the original DeepGCN, DGCNN) used "sampled" (min over the sampled points).
- ``room_normalisation``: how channels 6:9 are made; "max" = xyz of the room shifted to a zero
  minimum, divided by the shifted room's maximum (the only one pointseg makes).
- ``k`` (informative: the model's own config is what runs).

Where it comes from, first match: the checkpoint's ``meta["input"]`` (converted checkpoints, and
S3DIS runs trained here on blocks with a manifest: recorded at training), the manifest of the
blocks the run trained on (``meta["data"]["blocks"]``), the run's recorded ``num_point``, then the
paper's defaults (said in `source`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pointseg.errors import ConfigError

__all__ = [
    "S3DIS_CHANNELS",
    "InputRecipe",
    "blocks_params",
    "checkpoint_recipe",
    "stored_recipe",
    "with_block_params",
]

S3DIS_CHANNELS = ("x_centred", "y_centred", "z", "r", "g", "b", "x_room", "y_room", "z_room")
ROOM_NORMALISATIONS = ("max",)


@dataclass
class InputRecipe:
    channels: tuple[str, ...] = S3DIS_CHANNELS
    block_size: float = 1.0
    num_point: int = 4096
    min_points: int = 100
    centering: str = "points"
    room_normalisation: str = "max"
    k: int | None = None
    source: str = "defaults (the paper's recipe)"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        return d


def _check(recipe: InputRecipe, where: str) -> InputRecipe:
    from pointseg.data.blocks import CENTERINGS

    if tuple(recipe.channels) != S3DIS_CHANNELS:
        raise ConfigError(
            f"{where}: the model needs input channels {list(recipe.channels)}, which pointseg "
            f"cannot make from a point cloud; it makes {list(S3DIS_CHANNELS)}"
        )
    if recipe.room_normalisation not in ROOM_NORMALISATIONS:
        raise ConfigError(
            f"{where}: the model needs room normalisation {recipe.room_normalisation!r}; pointseg "
            f"makes {list(ROOM_NORMALISATIONS)} (xyz of the min-shifted room / its maximum)"
        )
    if recipe.centering not in CENTERINGS:
        raise ConfigError(
            f"{where}: unknown block centering {recipe.centering!r}; pointseg makes "
            f"{list(CENTERINGS)}"
        )
    if not (recipe.block_size > 0 and recipe.num_point >= 1 and recipe.min_points >= 1):
        raise ConfigError(
            f"{where}: bad block recipe (block_size {recipe.block_size}, num_point "
            f"{recipe.num_point}, min_points {recipe.min_points})"
        )
    return recipe


def blocks_params(
    root: str | Path, splits: tuple[str, ...] = ("train", "test")
) -> tuple[dict[str, Any], Path] | None:
    """The block recipe (`params`: block_size, num_point, min_points, centering, …) of an HDF5
    blocks root from the first readable `<split>/manifest.json`, with that manifest's path; None
    when there is none (e.g. the published indoor3d_sem_seg_hdf5_data folder). The one reader of
    blocks manifests (`pointseg eval`, `predict`, `view`)."""
    from pointseg.data.blocks.hdf5 import MANIFEST_NAME, read_blocks_manifest

    for split in splits:
        params = (read_blocks_manifest(Path(root) / split) or {}).get("params")
        if isinstance(params, dict):
            return params, Path(root) / split / MANIFEST_NAME
    return None


def with_block_params(recipe: InputRecipe, params: dict[str, Any]) -> InputRecipe:
    """``recipe`` with the block settings of a blocks manifest's `params` (the ones it names)."""
    return dataclasses.replace(
        recipe,
        block_size=float(params.get("block_size", recipe.block_size)),
        num_point=int(params.get("num_point", recipe.num_point)),
        min_points=int(params.get("min_points", recipe.min_points)),
        centering=str(params.get("centering", recipe.centering)),
    )


def stored_recipe(ckpt: dict[str, Any], where: str = "checkpoint") -> InputRecipe | None:
    """The recipe stored in ``meta["input"]``, validated; None when the checkpoint has none."""
    raw = (ckpt.get("meta") or {}).get("input")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: meta['input'] must be a dict, got {type(raw).__name__}")
    names = {f.name for f in dataclasses.fields(InputRecipe)}
    try:
        recipe = InputRecipe(**{k: v for k, v in raw.items() if k in names})
        recipe.channels = tuple(str(c) for c in recipe.channels)
        recipe.block_size, recipe.num_point = float(recipe.block_size), int(recipe.num_point)
        recipe.min_points = int(recipe.min_points)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: bad input recipe in meta['input']: {exc}") from None
    recipe.source = f"the checkpoint's input recipe ({raw.get('source', 'meta[input]')})"
    if recipe.k is None and (ckpt.get("model_config") or {}).get("k") is not None:
        recipe.k = int(ckpt["model_config"]["k"])
    return _check(recipe, where)


def checkpoint_recipe(ckpt: dict[str, Any], where: str = "checkpoint") -> InputRecipe:
    """The input recipe of a segmentation checkpoint (see the module docstring for the order)."""
    recipe = stored_recipe(ckpt, where)
    if recipe is not None:
        return recipe
    recipe = InputRecipe()
    data = dict((ckpt.get("meta") or {}).get("data") or {})
    sources = []
    blocks = data.get("blocks")
    found = blocks_params(blocks) if blocks else None
    if found is not None:
        params, manifest = found
        recipe = with_block_params(recipe, params)
        sources.append(f"the training blocks' manifest ({manifest.parent})")
    if data.get("num_point"):
        recipe.num_point = int(data["num_point"])
        sources.append("the checkpoint's num_point")
    k = (ckpt.get("model_config") or {}).get("k")
    recipe.k = int(k) if k is not None else None
    if sources:
        recipe.source = ", ".join(sources)
    return _check(recipe, where)


def blocks_mismatch(
    root: str | Path, recipe: InputRecipe, num_point: int, block_size: float
) -> list[str]:
    """How pre-made HDF5 test blocks differ from the recipe a model needs (empty: they agree or
    their manifest is unknown). Block-sampled scores on such blocks are not the model's."""
    found = blocks_params(root, ("test",))
    if found is None:
        return []
    params = found[0]
    wanted = {"num_point": num_point, "block_size": block_size, "centering": recipe.centering}
    return [
        f"the blocks in {root} were made with {key}={params[key]!r} but the model needs "
        f"{value!r} (remake them: pointseg blocks s3dis --{key.replace('_', '-')} {value})"
        for key, value in wanted.items()
        if key in params and params[key] != value
    ]
