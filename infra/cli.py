"""`canaryflow` command line: `python -m infra.cli COMMAND --help`.

Flags are generated from the pydantic config models, so their help is the field description.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from infra.errors import CanaryflowError, ControlError, SpecError


def add_model_flags(
    parser: argparse.ArgumentParser, model: type[BaseModel], prefix: str = ""
) -> None:
    """One `--flag` per field of `model` (nested models flattened), help from the description."""
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            add_model_flags(parser, ann, f"{prefix}{name}.")
            continue
        parser.add_argument(
            f"--{prefix}{name}".replace("_", "-"),
            dest=f"{prefix}{name}",
            default=None,
            help=f"{field.description or ''} (default: {_default(field)})",
        )


def _default(field: Any) -> object:
    return field.get_default(call_default_factory=True)


def model_from_flags(model: type[BaseModel], ns: argparse.Namespace) -> Any:
    """Build `model` from the flags that were given; pydantic validates and coerces."""
    data: dict[str, Any] = {}
    for key, value in vars(ns).items():
        if value is None or key.split(".")[0] not in model.model_fields:
            continue
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return model.model_validate(data)


def _train_demo(ns: argparse.Namespace) -> int:
    from infra.demo_model.release_candidate import train_and_register
    from infra.demo_model.train import TrainConfig

    config = model_from_flags(TrainConfig, ns)
    out = Path(ns.out) if ns.out else None
    report = train_and_register(
        config,
        out_dir=out,
        register=ns.register,
        name=ns.name,
        alias=ns.alias,
        tracking_uri=ns.tracking_uri,
    )
    print(report)
    return 0


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; train-demo's flags (from TrainConfig, whose module imports torch: 3 s)
    only when `argv` (default sys.argv) runs train-demo, so `canaryflow status` is quick."""
    parser = argparse.ArgumentParser(prog="canaryflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    td = sub.add_parser("train-demo", help="train the demo chat model (and register it)")
    if "train-demo" in (sys.argv[1:] if argv is None else argv):
        from infra.demo_model.train import TrainConfig

        add_model_flags(td, TrainConfig)
    td.add_argument("--out", help="model directory to write (default: under the state dir)")
    td.add_argument("--register", action="store_true", help="validate and register in MLflow")
    td.add_argument("--name", default="tiny-chat", help="registered model name")
    td.add_argument("--alias", default="challenger", help="alias to point at the new version")
    td.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: local)")
    td.set_defaults(run=_train_demo)
    from infra.control_cli import add_control_commands
    from infra.release_cli import add_release_command

    add_release_command(sub)
    add_control_commands(sub)
    return parser


def run(ns: argparse.Namespace, prog: str = "canaryflow") -> int:
    """Run the parsed command; bad settings, a bad release spec or a refused control request
    (ControlError: nothing changed) exit 2, another named error exits 1, all said plainly."""
    try:
        return int(ns.run(ns))
    except PydanticValidationError as e:
        print(f"{prog}: invalid settings:\n{e}", file=sys.stderr)
        return 2
    except (ControlError, SpecError) as e:
        print(f"{prog}: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    except CanaryflowError as e:
        print(f"{prog}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(argv).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
