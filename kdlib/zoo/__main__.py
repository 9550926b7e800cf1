"""``python -m kdlib.zoo build --teacher NAME``, ``python -m kdlib.zoo probe``, ``python -m kdlib.zoo measure`` and
``python -m kdlib.zoo verify``: see :mod:`kdlib.zoo`."""

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from kdlib import zoo
from kdlib.runtime import data_dir
from kdlib.zoo.recipes import PRETRAINED, TEACHERS, is_speaker_teacher, recipe_with

MEASURES = ("profile", "headroom", "phonemes", "costs", "real")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdlib.zoo", description="Build and verify the teacher zoo.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="(re)build one teacher and register it in the manifest")
    b.add_argument("--teacher", required=True, choices=TEACHERS, help="which teacher to build")
    b.add_argument("--corpus", default="default", help="corpus to train on (default: default)")
    b.add_argument(
        "--smoke",
        action="store_true",
        help="a few steps only (tests); writes to data/zoo-smoke unless --out is given, never to the zoo",
    )
    b.add_argument("--out", default=None, help="zoo folder to write to (default: data/zoo or $KDLIB_ZOO)")
    b.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an SSL recipe setting, e.g. --set steps=8000 (VALUE is read as JSON)",
    )
    p = sub.add_parser(
        "probe",
        help="re-probe SSL teachers over several splits and random-twin seeds and record the spread in the manifest",
    )
    p.add_argument("--teacher", action="append", default=None, help="which SSL teacher(s) (default: all shipped)")
    p.add_argument("--splits", type=int, default=3)
    p.add_argument("--twin-seeds", type=int, default=3)
    p.add_argument("--corpus", default="default")
    m = sub.add_parser(
        "measure",
        help="measure a pretrained or SSL teacher (kdlib.zoo.measures) and record it in the "
        "manifest: layer profile, headroom over its 2-layer student, costs, real voices",
    )
    m.add_argument(
        "--teacher",
        action="append",
        required=True,
        choices=[*PRETRAINED, *(t for t in TEACHERS if not is_speaker_teacher(t))],
    )
    m.add_argument("--only", action="append", choices=MEASURES, default=None, help="some measures (default: all)")
    m.add_argument("--corpus", default="default")
    m.add_argument("--seeds", type=int, default=3, help="seeds of the suite's downstream models")
    m.add_argument("--smoke", action="store_true", help="the smoke suite's clip counts (tests)")
    m.add_argument("--zoo", default=None, help="zoo folder whose manifest is written (default: data/zoo or $KDLIB_ZOO)")
    r = sub.add_parser("docs", aliases=["readme"], help="rewrite docs/zoo.md's generated section from the manifest")
    r.add_argument("--check", action="store_true", help="change nothing; exit 1 when docs/zoo.md disagrees")
    v = sub.add_parser("verify", help="check every file of every teacher against the manifest")
    v.add_argument("--zoo", default=None, help="zoo folder (default: data/zoo or $KDLIB_ZOO)")
    args = parser.parse_args(argv)
    if args.command == "verify":
        for name in zoo.manifest(args.zoo):
            zoo.verify(name, args.zoo)
            print(f"{name}: ok")
        return 0
    if args.command == "probe":
        return _probe(args)
    if args.command == "measure":
        return _measure(args)
    if args.command in ("docs", "readme"):
        return _readme(args)
    return _build(args)


def _probe(args) -> int:
    """Probe spread of each SSL teacher, written into its manifest entry as ``metrics.probe_spread``."""
    from kdlib.data import corpus
    from kdlib.evaluation.probing import probe_spread

    data = corpus.load(args.corpus)
    shipped = zoo.manifest()
    names = args.teacher or [n for n in shipped if not is_speaker_teacher(n)]
    for name in names:
        report = probe_spread(zoo.load(name), data, splits=args.splits, twin_seeds=args.twin_seeds)
        entry = dict(shipped[name])
        entry["metrics"] = {**entry["metrics"], "probe_spread": report}
        zoo.register(name, zoo.zoo_dir() / name, entry)
        line = {
            s: {t: f"{v['mean']:.3f} ± {v['std']:.3f}" for t, v in report[s].items()}
            for s in ("teacher", "random_twin", "mfcc")
        }
        print(name, json.dumps(line), "clears:", report["clears"])
    return 0


def _pretrained_entry(name: str, model) -> dict:
    from kdlib.models.whisper import PACKAGED

    spec = PACKAGED[name]
    return {
        "name": name,
        "architecture": "WhisperEncoder (transformers), log-mel front end",
        "source": {
            "packages": [{"name": d, "version": v, "file": f} for d, v, f in spec.parts],
            "sha256": spec.sha256,
            "original": spec.original,
            "format": "CTranslate2 model.bin",
        },
        "licence": spec.licence,
        "params": sum(p.numel() for p in model.parameters()),
        "layers": model.config.num_hidden_layers,
        "width": model.config.hidden_size,
        "trained_on": "680,000 hours of real speech (Radford et al., 2022, arXiv 2212.04356)",
        "metrics": {},
    }


def _measure(args) -> int:
    """Run :mod:`kdlib.zoo.measures` on each teacher and write the results into its manifest entry."""
    from kdlib.data import corpus
    from kdlib.data.audio import read_audio
    from kdlib.data.corpus import real
    from kdlib.data.features import mfcc_frames
    from kdlib.models.whisper import padding_agreement
    from kdlib.runtime import provenance
    from kdlib.zoo import measures

    data = corpus.load(args.corpus)
    only = args.only or list(MEASURES)
    clips = dict(train_words=96, test_words=48) if args.smoke else measures.SUITE_CLIPS
    mfcc = measures.layer_profile(lambda w: [mfcc_frames(w, cmvn=False)], data, progress=False)
    for name in args.teacher:
        model = zoo.load(name)
        shipped = zoo.manifest(args.zoo)
        entry = dict(shipped.get(name) or _pretrained_entry(name, model))
        metrics = dict(entry.get("metrics", {}))
        if "profile" in only:
            metrics["layer_profile"] = {
                "model": measures.layer_profile(measures.hidden_states_fn(model), data),
                "mfcc": mfcc,
            }
            if name in PRETRAINED:
                rows = data.select("test", "sentence")[:8]
                waves = [torch.from_numpy(read_audio(data.path(r["path"]))).unsqueeze(0) for r in rows]
                cosines = np.array([padding_agreement(model, w) for w in waves])
                metrics["padding_agreement"] = {"mean_cosine": cosines.mean(0).round(4).tolist(), "clips": len(waves)}
        if "headroom" in only:
            metrics["headroom"] = measures.headroom(model, data, seeds=tuple(range(args.seeds)), suite_clips=clips)
        if "phonemes" in only:
            metrics["phonemes"] = measures.phoneme_headroom(
                model,
                data,
                seeds=tuple(range(args.seeds)),
                steps=20 if args.smoke else 300,
                clips=dict(train_clips=24, test_clips=12) if args.smoke else None,
            )
        if "costs" in only:
            metrics["costs"] = measures.costs(model, zoo_name=name)
        if "real" in only and real.available():
            best = int(np.argmax(metrics["layer_profile"]["model"]["speaker"]["mean"]))
            metrics["real_voices"] = {
                "layer": best,
                "chosen_by": "best speaker probe on the embedded corpus",
                **measures.real_voices(model, [best], data)[best],
            }
        entry["metrics"] = metrics
        when = {"corpus": data.info.get("name"), **provenance()}
        entry["measured"] = {**entry.get("measured", {}), **{measure: when for measure in only}}
        folder = None if name in PRETRAINED else zoo.verify(name, args.zoo)
        zoo.register(name, folder, entry, zoo=args.zoo)
        print(name, "measured:", ", ".join(only), flush=True)
    return 0


def _readme(args) -> int:
    from kdlib.course.report import write_or_check
    from kdlib.zoo.measures import README_BEGIN, README_END, ZOO_PAGE, readme_section

    return write_or_check(
        readme_section(zoo.manifest()),
        ZOO_PAGE,
        README_BEGIN,
        README_END,
        check=args.check,
        what="zoo section",
        command="python -m kdlib.zoo docs",
    )


def _overrides(pairs: list[str]) -> dict:
    """``["steps=8000", "crop_seconds=2.0"]`` -> ``{"steps": 8000, "crop_seconds": 2.0}`` (values as JSON, else
    text)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects KEY=VALUE, got '{pair}'")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _build(args) -> int:
    from kdlib.zoo.build import build_ssl, build_sv

    name, out = args.teacher, Path(args.out) if args.out else (data_dir() / "zoo-smoke" if args.smoke else None)
    speaker_model = is_speaker_teacher(name)
    if args.set and speaker_model:
        raise SystemExit("--set applies to the SSL recipes only")
    overrides = _overrides(args.set)
    recipe_with(name, overrides)  # refuse a misspelt setting before anything is written
    target = zoo.zoo_dir(out)
    folder, tmp = target / name, target / f".{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    if speaker_model:
        entry = build_sv(name, tmp, args.corpus, smoke=args.smoke)
    else:
        entry = build_ssl(name, tmp, args.corpus, smoke=args.smoke, overrides=overrides, zoo=out)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    zoo.register(name, folder, entry, zoo=out)
    print(json.dumps({k: entry[k] for k in ("name", "params", "metrics", "build")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
