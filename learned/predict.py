"""``python -m learned.predict ARTIFACT INPUT...``: run any artifact on strings.

Prints the decoded output at every position, e.g. for the compiled MIU model

    $ python -m learned.predict artifacts/miu/compiled MIU MU
    MIU  M:False I:True U:True
    MU   M:False U:False

Works for compiled and learned artifacts alike (same class, same format).
"""

from __future__ import annotations

import argparse
import sys

import torch

from learned.artifact import decode, encode, load_artifact
from rasp_programs.errors import ToolkitError, cli_main


def split_tokens(text: str, words: list[str]) -> list[str]:
    """Characters when every token is one character, else whitespace-separated words."""
    return list(text) if all(len(t) == 1 for t in words) else text.split()


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m learned.predict", description=__doc__.splitlines()[0])
    ap.add_argument("artifact", help="an artifact folder, e.g. artifacts/miu/compiled")
    ap.add_argument("inputs", nargs="+", help="input strings")
    args = ap.parse_args(argv)
    model, _ = load_artifact(args.artifact, dtype=torch.float64)
    cfg = model.cfg
    words = [t for t in cfg.vocab if t not in (cfg.bos_token, cfg.pad_token)]
    inputs = [split_tokens(text, words) for text in args.inputs]
    if any(not x for x in inputs):
        raise ToolkitError("empty input")
    ids = encode(cfg, inputs)
    with torch.no_grad():
        outs = decode(cfg, model(ids))
    width = max(len(t) for t in args.inputs)
    for text, x, out in zip(args.inputs, inputs, outs):
        print(f"{text:<{width}}  " + " ".join(f"{t}:{o}" for t, o in zip(x, out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
