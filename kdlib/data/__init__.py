"""Speech data: everything between files on disk and batches of tensors.

- ``audio``: reading, validating and resampling audio; crops.
- ``augment``: noise, reverberation, gain, a telephone channel.
- ``features``: log-mel filterbanks, MFCCs and the MFCC-statistics baseline.
- ``sources``: where a dataset lives (manifest rows, SV trial lists): the embedded corpus, VoxCeleb1, Speech
  Commands, CN-Celeb, joined sources, any folder in VoxCeleb layout.
- ``datasets``: PyTorch datasets over a source, and kdlib's one loop over clips.
- ``corpus``: the embedded synthetic multi-speaker corpus (``python -m kdlib.data.corpus build``), its eSpeak NG
  synthesizer (``espeak``) and sentences (``sentences``), and the real-speech evaluation prompts
  (``corpus.real``).
- ``unlabelled``: real speech without speaker labels, for distillation only.
"""
