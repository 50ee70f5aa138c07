"""Build (and optionally smoke-test) the serving image from the command line.

python -m infra.image MODEL_DIR [--mounted] [--flavor cpu|gpu] [--smoke]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from infra.errors import CanaryflowError
from infra.image.build import build_image
from infra.image.smoke import smoke_test


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.image", description=__doc__)
    parser.add_argument("model_dir", type=Path, help="model directory (baked, or smoke-mounted)")
    parser.add_argument("--mounted", action="store_true", help="mount the model at run time")
    parser.add_argument("--flavor", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--base-image", default=None, help="FROM image (default: per flavor)")
    parser.add_argument("--smoke", action="store_true", help="run the smoke test afterwards")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        built = build_image(
            None if args.mounted else args.model_dir,
            flavor=args.flavor,
            model_mode="mounted" if args.mounted else "baked",
            base_image=args.base_image,
        )
        print(built)
        if args.smoke:
            print(smoke_test(built.tag, model_dir=args.model_dir if args.mounted else None))
    except CanaryflowError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
