"""Speaker models (ECAPA-TDNN, ResNet-34) and heads; SSL model wrappers live in ``kdlib.models.ssl``."""

from kdlib.models.ecapa import ECAPA_TDNN
from kdlib.models.heads import AAMSoftmax, SpeakerClassifier, stats_pool
from kdlib.models.resnet import ResNet34, ResNetSV

__all__ = ["ECAPA_TDNN", "AAMSoftmax", "ResNet34", "ResNetSV", "SpeakerClassifier", "stats_pool"]
