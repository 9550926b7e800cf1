"""``python -m kdlib.zoo build NAME [--smoke]`` and ``python -m kdlib.zoo verify``: see :mod:`kdlib.zoo`."""

import argparse
import json
import os
import shutil
import sys

from kdlib import zoo
from kdlib.config import data_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdlib.zoo")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="(re)build one teacher and register it in the manifest")
    b.add_argument("name", choices=zoo.RECIPES)
    b.add_argument("--corpus", default="default")
    b.add_argument("--smoke", action="store_true",
                   help="a few steps only (tests); writes to data/zoo-smoke unless --out is given, never to the zoo")
    b.add_argument("--out", default=None, help="zoo folder (default: data/zoo or $KDLIB_ZOO)")
    b.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an SSL recipe setting, e.g. --set steps=8000 (VALUE is read as JSON)")
    sub.add_parser("verify", help="check every shipped file against the manifest")
    args = parser.parse_args(argv)
    if args.command == "verify":
        for name in zoo.manifest():
            zoo.verify(name)
            print(f"{name}: ok")
        return 0
    previous = os.environ.get("KDLIB_ZOO")
    if args.out or args.smoke:
        os.environ["KDLIB_ZOO"] = args.out or str(data_dir() / "zoo-smoke")
    try:
        return _build(args)
    finally:  # never leak the temporary zoo location into the caller's environment
        if previous is None:
            os.environ.pop("KDLIB_ZOO", None)
        else:
            os.environ["KDLIB_ZOO"] = previous


def _overrides(pairs: list[str]) -> dict:
    """``["steps=8000", "crop_seconds=2.0"]`` -> ``{"steps": 8000, "crop_seconds": 2.0}`` (values as JSON, else text)."""
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
    speaker_model = args.name in ("ecapa", "resnet34")
    if args.set and speaker_model:
        raise SystemExit("--set applies to the SSL recipes only")
    overrides = _overrides(args.set)
    if overrides:  # refuse a misspelt setting before anything is written
        from kdlib.zoo.ssl_recipes import recipe_with

        recipe_with(args.name, overrides)
    folder = zoo.zoo_dir() / args.name
    tmp = zoo.zoo_dir() / f".{args.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    if speaker_model:
        from kdlib.zoo.sv import build_sv

        entry = build_sv(args.name, tmp, args.corpus, smoke=args.smoke)
    else:
        from kdlib.zoo.ssl_recipes import build_ssl

        entry = build_ssl(args.name, tmp, args.corpus, smoke=args.smoke, overrides=overrides)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    zoo.register(args.name, folder, entry)
    print(json.dumps({k: entry[k] for k in ("name", "params", "metrics", "build")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
