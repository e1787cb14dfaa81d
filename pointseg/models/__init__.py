"""DeepGCN models: typed configs, backbones + heads, named presets (`create_model("resgcn28")`).

One registry (`pointseg.models.registry`) holds the point-cloud presets (defined in `registry`)
and the graph presets (`graph_presets`); importing this package registers both.
"""

from pointseg.models import graph_presets  # noqa: F401 - registers the graph-model presets
from pointseg.models.backbone import DeepGCN
from pointseg.models.config import ModelConfig
from pointseg.models.dgcnn import DGCNN, DGCNNConfig  # also registers `dgcnn_s3dis`
from pointseg.models.heads import ClassificationHead, SegmentationHead
from pointseg.models.registry import (
    MODEL_REGISTRY,
    create_model,
    get_config,
    list_models,
    model_kind,
    register_graph_model,
    register_model,
)

__all__ = [
    "DeepGCN",
    "DGCNN",
    "DGCNNConfig",
    "ModelConfig",
    "SegmentationHead",
    "ClassificationHead",
    "MODEL_REGISTRY",
    "create_model",
    "get_config",
    "list_models",
    "model_kind",
    "register_graph_model",
    "register_model",
]
