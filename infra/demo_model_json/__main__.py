"""`python -m infra.demo_model_json`: train the JSON-extraction demo model, write its eval set.

    python -m infra.demo_model_json train OUT [--steps N] [--seed S] [--bad]
    python -m infra.demo_model_json eval-set PATH [--seed S] [--n-heldout N]

`--bad` trains the broken variant (targets are Python reprs, not JSON) with the same data,
steps and size, so a release can tell it apart only by its answers. Training prints where
the evaluation set of that seed is (beside OUT) and how the model did on it offline.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.cli import add_model_flags, model_from_flags, run
from infra.demo_model_json.train import JsonTrainConfig, train, write_eval_set


def eval_path_for(out: Path) -> Path:
    """Where `train OUT` writes the evaluation set: beside the model directory, not inside."""
    return out.with_name(f"{out.name}.eval.jsonl")


def _train(ns: argparse.Namespace) -> int:
    config: JsonTrainConfig = model_from_flags(JsonTrainConfig, ns)
    if ns.bad:
        config = config.model_copy(update={"corrupt": 1.0})
    out = Path(ns.out)
    r = train(config, out)
    eval_path = write_eval_set(config, eval_path_for(out))
    print(
        f"trained Qwen2ForCausalLM ({'bad: targets not JSON' if config.corrupt else 'good'}) "
        f"in {r.seconds:.0f} s, {r.steps} steps, final loss {r.final_loss:.4f}\n"
        f"held-out (offline, {r.n_eval} rows): field accuracy {r.field_accuracy:.1%}, "
        f"JSON valid {r.json_valid:.1%}, exact match {r.exact_match:.1%}\n"
        f"model directory: {out}\nevaluation set: {eval_path}"
    )
    return 0


def _eval_set(ns: argparse.Namespace) -> int:
    config: JsonTrainConfig = model_from_flags(JsonTrainConfig, ns)
    print(write_eval_set(config, Path(ns.path)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra.demo_model_json", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train the model into OUT (and its eval set beside it)")
    tr.add_argument("out", help="model directory to write")
    tr.add_argument("--bad", action="store_true", help="train the variant that breaks the JSON")
    add_model_flags(tr, JsonTrainConfig)
    tr.set_defaults(run=_train)
    ev = sub.add_parser("eval-set", help="write the held-out evaluation rows of a seed")
    ev.add_argument("path", help="JSONL file to write")
    add_model_flags(ev, JsonTrainConfig)
    ev.set_defaults(run=_eval_set)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv), prog="demo_model_json")


if __name__ == "__main__":
    sys.exit(main())
