"""`pointseg demo [--out reports/demo] [--quick | --long]`: the end-to-end demo, from nothing to a report.

Stages (each timed): synthesise S3DIS-format rooms (`pointseg.data.synthetic.synth_s3dis`) →
prepare the room cache (`prepare_s3dis`) → cut HDF5 training blocks (`make_s3dis_blocks`) → train
a PlainGCN and a ResGCN of the same depth and width (`pointseg.engine.train`) → evaluate both on
every point of the held-out area (whole-room protocol, `pointseg.engine.evaluate.evaluate_rooms`)
→ write `<out>/report.md` with both models' per-class IoU side by side (keyed by class name),
OA/mAcc/mIoU, confusion matrices, training curves and a ground truth / PlainGCN / ResGCN picture of
a test room.

The point it shows (DeepGCNs, Li et al. ICCV'19): at this depth the plain GCN trains badly — its
training loss stalls — while the residual GCN of the same depth keeps converging and segments the
rooms clearly better. Sizes (`DEMO_DEFAULTS`, mirrored in configs/demo.yaml) are chosen so the whole
demo takes at most ~10 minutes on 2 CPU cores: the two models train at the same time, one process
and one torch thread each (`parallel`). `--quick` is a tiny version for the test suite; `--long`
trains the same pair to convergence (<= 60 minutes) and reports how far the 10-minute run is from
it. Measurements and the learning curve that chose these sizes: docs/demo.md.
"""

from __future__ import annotations

from pointseg.demo.pipeline import run_demo, train_parallel
from pointseg.demo.settings import DEMO_DEFAULTS, LONG_OVERRIDES, QUICK_OVERRIDES, demo_config

__all__ = [
    "DEMO_DEFAULTS",
    "LONG_OVERRIDES",
    "QUICK_OVERRIDES",
    "demo_config",
    "run_demo",
    "train_parallel",
]
