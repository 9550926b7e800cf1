"""The zoo's proof that a teacher learned something: layer-wise probes against a random twin and MFCCs."""

from __future__ import annotations

import copy

import torch

from kdlib import probing


def random_twin(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The same architecture with fresh random weights."""
    torch.manual_seed(seed)
    return type(model)(copy.deepcopy(model.config)).eval()


def probe_report(model, data, device: str = "cpu") -> dict:
    """Probe accuracies per layer for the teacher, its random twin and MFCC statistics, and the verdict the
    zoo requires: at its best layer the teacher beats its twin on both probes and matches or beats MFCCs on
    at least one."""
    def layers(m):
        m = m.float().to(device).eval()
        return lambda w: m(w, output_hidden_states=True).hidden_states

    report = {"teacher": probing.layerwise_probes(layers(model), data, device=device, progress=False),
              "random_twin": probing.layerwise_probes(layers(random_twin(model)), data, device=device,
                                                      progress=False),
              "mfcc": probing.layerwise_probes(lambda w: [probing.mfcc_frames(w, cmvn=False)], data, device=device,
                                               progress=False)}
    best = {k: {task: max(v) for task, v in accs.items()} for k, accs in report.items()}
    report["best"] = best
    report["beats_random_twin"] = all(best["teacher"][t] > best["random_twin"][t] for t in ("speaker", "keyword"))
    report["matches_mfcc"] = any(best["teacher"][t] >= best["mfcc"][t] for t in ("speaker", "keyword"))
    return report
