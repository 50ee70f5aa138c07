"""Where the load's prompts come from: the golden set, captured traffic, or a synthetic mix.

`load_prompts(source)` runs in the pipeline process, before Locust starts, so a bad prompt
file fails the step early with a PromptSourceError; the locustfile only reads the resolved
list (`write_prompts` / `read_prompts`, one JSON object a line):

    {"messages": [{"role": "user", "content": "12+30"}], "prompt": "12+30", "answer": "42"}

`answer` is the exact expected completion when known (golden and synthetic), else null.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from infra.load import PromptSourceError
from validation.golden import TaskSpec, read_jsonl, sample

SourceKind = Literal["golden", "replay", "synthetic"]


class PromptSource(BaseModel):
    """Which prompts the load sends (cycled in order when the budget exceeds them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: SourceKind = Field(
        "synthetic",
        description="golden: a JSONL golden set of {prompt, answer}; replay: capture JSONL "
        "written by the serving middleware (a file, or a directory of *.jsonl); synthetic: "
        "arithmetic problems drawn from `task` with `seed`.",
    )
    path: Path | None = Field(
        None, description="The golden or replay file (or replay directory); unset for synthetic."
    )
    task: TaskSpec = Field(
        default_factory=TaskSpec, description="Synthetic mix: the problem distribution."
    )
    size: int = Field(
        1000, ge=1, le=1_000_000, description="Synthetic: prompts drawn; golden/replay: "
        "the most prompts read from the file.",
    )  # fmt: skip
    seed: int = Field(0, description="Synthetic: the sampling seed (same seed, same prompts).")

    @model_validator(mode="after")
    def _check_path(self) -> PromptSource:
        if self.kind == "synthetic" and self.path is not None:
            raise ValueError("a synthetic prompt source takes no path: drop `path`")
        if self.kind != "synthetic" and self.path is None:
            raise ValueError(f"a {self.kind} prompt source needs `path` (its JSONL file)")
        return self


@dataclass(frozen=True)
class Prompt:
    """One request's chat messages; `prompt` is the last user message (for the records)."""

    messages: list[dict[str, str]] = field(hash=False)
    prompt: str
    answer: str | None = None


def user_prompt(text: str, answer: str | None = None) -> Prompt:
    return Prompt(messages=[{"role": "user", "content": text}], prompt=text, answer=answer)


def load_prompts(source: PromptSource) -> list[Prompt]:
    """The prompts `source` names; raises PromptSourceError when there are none."""
    if source.kind == "synthetic":
        prompts = [
            user_prompt(ex.prompt, ex.answer)
            for ex in sample(source.task, source.size, source.seed)
        ]
    elif source.kind == "golden":
        prompts = _golden(_existing(source.path))[: source.size]
    else:
        prompts = _replay(_existing(source.path), source.size)
    if not prompts:
        raise PromptSourceError(
            f"the {source.kind} prompt source {source.path} holds no usable prompts: "
            "point `path` at a non-empty file"
        )
    return prompts


def _existing(path: Path | None) -> Path:
    if path is None or not path.exists():
        raise PromptSourceError(f"prompt file {path} does not exist: check the load profile's path")
    return path


def _golden(path: Path) -> list[Prompt]:
    try:
        examples = read_jsonl(path)
    except (OSError, ValueError, TypeError) as exc:
        raise PromptSourceError(
            f"golden set {path} is not JSONL of {{prompt, answer}}: {exc}"
        ) from exc
    return [user_prompt(ex.prompt, ex.answer) for ex in examples]


def _replay(path: Path, limit: int) -> list[Prompt]:
    """Chat prompts of captured records; truncated or unparsed requests are skipped."""
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    prompts: list[Prompt] = []
    for record in _records(files):
        prompt = _replayable(record)
        if prompt is not None:
            prompts.append(prompt)
            if len(prompts) >= limit:
                break
    return prompts


def _records(files: list[Path]) -> Iterator[dict[str, Any]]:
    for file in files:
        try:
            with file.open(encoding="utf-8") as f:
                for line in f:
                    obj = _json_line(line)
                    if obj is not None:
                        yield obj
        except OSError as exc:
            raise PromptSourceError(f"replay file {file} cannot be read: {exc}") from exc


def _json_line(line: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None  # a torn last line of a file still being written
    return obj if isinstance(obj, dict) else None


def _replayable(record: dict[str, Any]) -> Prompt | None:
    if (
        record.get("truncated")
        or record.get("path", "/v1/chat/completions") != "/v1/chat/completions"
    ):
        return None
    messages = record.get("messages")
    if isinstance(messages, list) and messages:
        kept = [
            {"role": str(m["role"]), "content": str(m["content"])}
            for m in messages
            if isinstance(m, dict) and m.get("role") and isinstance(m.get("content"), str)
        ]
        users = [m["content"] for m in kept if m["role"] == "user"]
        if users:
            return Prompt(messages=kept, prompt=users[-1])
    text = record.get("prompt")
    return user_prompt(text) if isinstance(text, str) and text else None


def write_prompts(prompts: list[Prompt], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for p in prompts:
            f.write(json.dumps(asdict(p)) + "\n")
    return path


def read_prompts(path: Path) -> list[Prompt]:
    with path.open(encoding="utf-8") as f:
        return [Prompt(**json.loads(line)) for line in f if line.strip()]


class PromptOrder:
    """Which prompt the n-th request sends: each prompt once per pass, every pass in a fresh
    seeded random order.

    Never the file order: the router's weighted round robin sends every k-th request to the
    canary, so cycling a 500-prompt set in order at 10% would show the canary the same 50
    prompts again and again (seen: 53 distinct of 327), and its quality and drift would be
    judged on a tenth of the set. A random order per pass makes each variant's prompts a
    uniform random sample of the set, whatever the routing.
    """

    def __init__(self, n: int, seed: int) -> None:
        if n < 1:
            raise ValueError(f"PromptOrder needs at least one prompt, got {n}")
        self.n, self.seed = n, seed
        self._pass, self._order = -1, list(range(n))

    def index(self, ticket: int) -> int:
        round_, position = divmod(ticket, self.n)
        if round_ != self._pass:
            self._order = list(range(self.n))
            random.Random(f"{self.seed}-{round_}").shuffle(self._order)
            self._pass = round_
        return self._order[position]
