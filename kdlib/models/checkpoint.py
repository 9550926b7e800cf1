"""Speaker-model checkpoints: ``config.json`` (architecture and its arguments) + ``model.safetensors``.

The weights are stored in fp16 (half the size; cast back to fp32 on load). Keys: the front end's buffers
under ``fbank.``, the encoder's parameters unprefixed (the layout of the shipped zoo teachers, which stay
byte-identical). No training head is saved: a checkpoint is what :meth:`SpeakerModel.deployable` gives.
"""

from __future__ import annotations

import json
from pathlib import Path

from kdlib.models.speaker import ARCHITECTURES, SpeakerModel, speaker_model

_FRONTEND = "fbank."


def save_speaker_model(
    model: SpeakerModel, folder: str | Path, architecture: str, kwargs: dict, half: bool = True
) -> Path:
    """Write ``model``'s front end and encoder (fp16, or fp32 with ``half=False``) and its config to ``folder``;
    return the folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {**{_FRONTEND + k: v for k, v in model.frontend.state_dict().items()}, **model.encoder.state_dict()}
    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous() for k, v in state.items()
    }
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"kdlib_architecture": architecture, "kwargs": kwargs}, indent=1))
    return folder


def is_speaker_checkpoint(folder: str | Path) -> bool:
    config = Path(folder) / "config.json"
    return config.exists() and "kdlib_architecture" in json.loads(config.read_text())


def load_speaker_model(folder: str | Path) -> SpeakerModel:
    """Load a checkpoint written by :func:`save_speaker_model` as a float32 :class:`SpeakerModel` in eval mode."""
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text())
        architecture, kwargs = config["kdlib_architecture"], config["kwargs"]
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{folder / 'config.json'}: not a kdlib speaker-model config ({err})") from err
    if architecture not in ARCHITECTURES:
        raise ValueError(f"{folder / 'config.json'}: unknown architecture {architecture!r}")
    model = speaker_model(architecture, **kwargs)  # front end + encoder, no head
    state = load_file(str(folder / "model.safetensors"))
    parts = {
        "frontend": {k[len(_FRONTEND) :]: v for k, v in state.items() if k.startswith(_FRONTEND)},
        "encoder": {k: v for k, v in state.items() if not k.startswith(_FRONTEND)},
    }
    for name, part in parts.items():
        module = getattr(model, name)
        reference = module.state_dict()
        module.load_state_dict({k: v.to(reference[k].dtype) if k in reference else v for k, v in part.items()})
    return model.eval()
