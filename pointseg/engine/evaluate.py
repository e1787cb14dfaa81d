"""`pointseg eval`: evaluate any checkpoint through its task.

`evaluate_checkpoint` loads the checkpoint, finds its task (`pointseg.tasks.task_for_checkpoint`:
the dataset it records, else its model's kind), checks that every option given applies to that
task (`Task.eval_options`; others are a ConfigError naming the flags) and calls `Task.evaluate`.
The protocols themselves live in `pointseg.engine.s3dis_eval` (block-sampled and whole-room),
`pointseg.engine.six_fold`, `pointseg.engine.modelnet_eval` and `pointseg.engine.graph_eval`; this
module also keeps the names earlier code imported from it.
"""

from __future__ import annotations

import os
from typing import Any

from pointseg.engine.checkpoints import (
    checkpoint_meta as _meta,
)
from pointseg.engine.checkpoints import (
    checkpoint_task,
    resolve_checkpoint,
)
from pointseg.engine.checkpoints import (
    load_model as _load,
)
from pointseg.engine.checkpoints import (
    meta_data as _meta_data,
)
from pointseg.engine.checkpoints import (
    run_config as _run_config,
)
from pointseg.engine.modelnet_eval import (
    _modelnet_dataset,
    evaluate_modelnet,
    evaluate_modelnet_checkpoint,
    scale_shift,
)
from pointseg.engine.s3dis_eval import (
    PROTOCOLS,
    RoomPrediction,
    _s3dis_class_names,
    _tqdm,
    evaluate_blocks,
    evaluate_rooms,
    evaluate_s3dis,
    predict_room,
)
from pointseg.engine.six_fold import six_fold
from pointseg.runtime import file_sha256, peak_rss_mb, resolve_device


def evaluate_checkpoint(checkpoint: str | os.PathLike, **kw: Any) -> dict[str, Any]:
    """Evaluate any checkpoint with its task's protocol; returns the metrics written.

    Options left at None are not passed on (the task's defaults / the training run's apply);
    an option the task does not take is a ConfigError naming its flag.
    """
    from pointseg.checkpoint import load_checkpoint
    from pointseg.tasks import task_for_checkpoint

    path = resolve_checkpoint(checkpoint)
    ckpt = load_checkpoint(path)
    task = task_for_checkpoint(ckpt)
    given = {k: v for k, v in kw.items() if v is not None}
    task.check_eval_options(path, given)
    return task.evaluate(path, ckpt, **given)


__all__ = [
    "PROTOCOLS",
    "RoomPrediction",
    "_load",
    "_meta",
    "_meta_data",
    "_modelnet_dataset",
    "_run_config",
    "_s3dis_class_names",
    "_tqdm",
    "checkpoint_task",
    "evaluate_blocks",
    "evaluate_checkpoint",
    "evaluate_modelnet",
    "evaluate_modelnet_checkpoint",
    "evaluate_rooms",
    "evaluate_s3dis",
    "file_sha256",
    "peak_rss_mb",
    "predict_room",
    "resolve_checkpoint",
    "resolve_device",
    "scale_shift",
    "six_fold",
]
