"""The demo model's trainer, as a command trainer of the retrain flow (infra/training/).

    python -m infra.demo_model.trainer REQUEST.json [--steps N] [--max-steps N] [--min-prompts N]

Reads the request (infra/training/request.py), takes the champion's training config from its
`canaryflow.train_config` tag (the default config on a first training), widens its arithmetic
task to the prompts of the exported training split (`observed_task` / `plan` in retrain.py),
trains into `<output_dir>/model` and answers with `result.json`: the model directory, its
held-out exact match as metrics, and the demo's provenance tags. It registers nothing: the
retrain flow checks and registers what it returns, as for any team's trainer.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]

from infra.demo_model.release_candidate import candidate_tags
from infra.demo_model.retrain import champion_config, observed_task, plan
from infra.demo_model.train import train
from infra.training.request import TrainerResult, TrainingRequest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.demo_model.trainer",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("request", type=Path, help="request.json written by the retrain flow")
    parser.add_argument(
        "--steps", type=int, default=None, help="optimizer steps (default: scaled to the task)"
    )
    parser.add_argument("--max-steps", type=int, default=4000, help="cap on the scaled steps")
    parser.add_argument(
        "--min-prompts", type=int, default=20, help="fewer parseable: keep the champion's task"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
    logging.getLogger("canaryflow.train").setLevel(logging.INFO)  # step and loss (fit.py)
    request = TrainingRequest.read(args.request)
    prompts = pd.read_parquet(request.data.train, columns=["prompt"])["prompt"]
    base = champion_config(request.champion.tags)
    seen, n = observed_task(prompts)
    config = plan(base, seen, n, min_prompts=args.min_prompts, steps=args.steps,
                  max_steps=args.max_steps)  # fmt: skip
    origin = f"champion v{request.champion.version}" if request.champion.version else "defaults"
    print(f"from {origin}: task {base.task.model_dump()} → {config.task.model_dump()} "
          f"({n} of {len(prompts)} training prompts parsed), {base.steps} → {config.steps} "
          "steps", flush=True)  # fmt: skip
    out = Path(request.output_dir)
    result = train(config, out / "model")
    print(f"exact match {result.exact_match:.1%} on {result.n_eval} held-out problems, "
          f"{result.seconds:.0f} s", flush=True)  # fmt: skip
    TrainerResult(
        model_dir="model",
        metrics={"exact_match": result.exact_match, "final_loss": result.final_loss,
                 "train_seconds": result.seconds},
        tags=candidate_tags(config, result),
    ).write(out)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
