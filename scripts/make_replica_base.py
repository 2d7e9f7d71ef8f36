#!/usr/bin/env python3
"""Write the full-size stand-in for NVIDIA's Arabic FastConformer, for rehearsals at real size.

    python scripts/make_replica_base.py --out rehearsal/replica_base.nemo [--seed 0]

The Hub is out of reach here, but the architecture is not: the same FastConformer hybrid (17 x 512,
8 heads, dw_striding 8x with 256 channels, RNNT networks of 640, 1024 SentencePiece pieces trained
on the Tanzil text) with random weights. The workflow takes the file as `base_model`
(config/rehearsal.yaml, `make rehearsal`). Also writes <out>.json with the parameter counts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the .nemo file to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--tokenizer-text", default="simple", choices=["simple", "uthmani"],
                        help="the Tanzil text variant the tokenizer is trained on")
    args = parser.parse_args(argv)

    from quranft.models.base_model import make_replica_base

    metadata = make_replica_base(args.out, args.seed, args.tokenizer_text)
    parameters = metadata["parameters"]["total"]
    print(f"{args.out}: {parameters:,} parameters, {metadata['bytes'] / 1e6:.0f} MB, "
          f"built in {metadata['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
