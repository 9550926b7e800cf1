"""Knowledge distillation: the losses, then one module per method.

- ``losses``: every KD loss, with its formula and citation (logit KD, multi-level KD, embedding and hidden-state
  KD, the DistilHuBERT layer loss and its multi-teacher forms).
- ``layers``: DistilHuBERT-style layer distillation, which teacher layers a student's prediction heads predict.
- ``os_kdft``: OS-KDFT, one-step distillation and fine-tuning (notebook 01).
- ``ensemble``: ensemble KD of several SSL teachers (notebook 03).
- ``multitask``: joint keyword spotting and speaker verification on a distilled encoder (notebook 04).
- ``real_teacher``: distilling a speaker encoder trained on real speech into a student trained on synthetic speech
  (notebook 00).

IML-KD (notebook 02) is ``losses.multi_level`` on integrated inputs (``kdlib.evaluation.attribution``).
"""
