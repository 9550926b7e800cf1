"""Speaker models (ECAPA-TDNN, ResNet-34) and heads; SSL model wrappers live in ``kdlib.models.ssl``."""

from kdlib.models.ecapa import ECAPA_TDNN
from kdlib.models.heads import AAMSoftmax, SpeakerClassifier, centroid_head, stats_pool
from kdlib.models.resnet import ResNet34, ResNetSV

__all__ = ["ECAPA_TDNN", "AAMSoftmax", "centroid_head", "ResNet34", "ResNetSV", "SpeakerClassifier", "stats_pool"]
