"""Speaker models (front end + encoder + head: ECAPA-TDNN, ResNet-34, AAM-softmax) and their checkpoints;
SSL model wrappers live in ``kdlib.models.ssl``."""

from kdlib.data.features import stats_pool
from kdlib.models.checkpoint import load_speaker_model, save_speaker_model
from kdlib.models.ecapa import ECAPA_TDNN
from kdlib.models.heads import AAMSoftmax, PredictionHeads, centroid_head, fitted_head
from kdlib.models.resnet import ResNet34, ResNetSV
from kdlib.models.speaker import ARCHITECTURES, SpeakerModel, speaker_model

__all__ = [
    "ARCHITECTURES",
    "AAMSoftmax",
    "ECAPA_TDNN",
    "PredictionHeads",
    "ResNet34",
    "ResNetSV",
    "SpeakerModel",
    "centroid_head",
    "fitted_head",
    "load_speaker_model",
    "save_speaker_model",
    "speaker_model",
    "stats_pool",
]
