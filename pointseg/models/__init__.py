"""DeepGCN models: typed config, backbone + heads, named presets (`create_model("resgcn28")`)."""

from pointseg.models.backbone import DeepGCN
from pointseg.models.config import ModelConfig
from pointseg.models.heads import ClassificationHead, SegmentationHead
from pointseg.models.registry import (
    MODEL_REGISTRY,
    create_model,
    get_config,
    list_models,
    register_model,
)
from pointseg.models.dgcnn import DGCNN, DGCNNConfig  # noqa: E402 - registers `dgcnn_s3dis`

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
    "register_model",
]
