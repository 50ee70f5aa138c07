"""The second demo task: extract the fields of a generated sentence as JSON.

    "Extract as JSON: In Lyon, Maria ordered 12 lamps."
    -> {"city": "Lyon", "name": "Maria", "count": 12, "item": "lamp"}

Sentences come from templates about a person, a city, an item and a quantity. The model
answers with the keys in the order the sentence mentions them; the evaluation set's
`expected_response` is the fixed-order form (name, city, item, count). Both are the same JSON
object, so an exact-match scorer fails correct answers: the right scorers are JSON validity,
the JSON schema and field-level match (`expectations.fields`).

Everything is seeded. The held-out set is distinct prompts that the training stream never
shows. The "bad" variant's targets are `str(dict)` (Python repr, single quotes): the fields
look right to a human but it is not JSON — the classic bug a release must roll back.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSTRUCTION = "Extract as JSON: "
FIELDS = ("name", "city", "item", "count")
MIN_COUNT, MAX_COUNT = 2, 99

NAMES = (
    "Maria", "Ahmed", "Yuki", "Olga", "Pedro", "Chen", "Fatima", "Liam", "Sofia", "Kwame",
    "Anna", "Ravi", "Elena", "Tomas", "Aisha", "Noah", "Ines", "Mateo", "Hana", "Oscar",
    "Leila", "Jonas", "Priya", "Diego", "Zara", "Emil", "Nadia", "Felix", "Mei", "Omar",
    "Clara", "Ivan", "Lucia", "Samir", "Greta", "Arjun", "Rosa", "Kenji", "Amara", "Hugo",
)  # fmt: skip
CITIES = (
    "Lyon", "Osaka", "Lagos", "Quito", "Oslo", "Pune", "Cairo", "Lima", "Porto", "Seoul",
    "Accra", "Milan", "Hanoi", "Perth", "Dakar", "Bern", "Tunis", "Cork", "Kyoto", "Riga",
    "Malmo", "Sucre", "Leeds", "Graz", "Turin", "Basra", "Nice", "Split",
)  # fmt: skip
ITEMS = (
    "lamp", "chair", "book", "kettle", "drum", "candle", "mug", "towel", "blanket", "clock",
    "basket", "helmet", "pencil", "jacket", "bottle", "ladder", "mirror", "pillow", "radio",
    "shovel",
)  # fmt: skip
# {items} is the plural ("12 lamps"); every item above takes a plain -s plural.
TEMPLATES = (
    "{name} from {city} ordered {count} {items}.",
    "In {city}, {name} ordered {count} {items}.",
    "{name} bought {count} {items} in {city}.",
    "{count} {items} were shipped to {name} in {city}.",
    "Ship {count} {items} to {city} for {name}.",
    "{name} needs {count} {items} delivered to {city}.",
    "A customer in {city}, {name}, wants {count} {items}.",
    "Order for {name}: {count} {items}, deliver to {city}.",
    "{city} store: {name} returned {count} {items}.",
    "We sent {name} {count} {items} from {city}.",
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "city": {"type": "string", "minLength": 1},
        "item": {"type": "string", "minLength": 1},
        "count": {"type": "integer", "minimum": 0},
    },
    "required": list(FIELDS),
    "additionalProperties": False,
}

_PLACEHOLDER = re.compile(r"\{(name|city|items|count)\}")

# A new market's customers (the demo's drifted window): names and cities the training stream
# never shows, longer than the usual ones, in the same sentences.
DRIFT_NAMES = (
    "Bartholomew", "Maximiliano", "Anastasia", "Gwendolyn", "Konstantin", "Evangeline",
    "Sebastiano", "Wilhelmina", "Florentino", "Annabella", "Leopoldine", "Nathaniel",
)  # fmt: skip
DRIFT_CITIES = (
    "Reykjavik", "Johannesburg", "Valparaiso", "Thessaloniki", "Guadalajara", "Vladivostok",
    "Ouagadougou", "Antananarivo", "Barranquilla", "Copenhagen",
)  # fmt: skip


@dataclass(frozen=True)
class Record:
    """The facts one sentence states."""

    name: str
    city: str
    item: str
    count: int

    def fields(self) -> dict[str, Any]:
        """The fields in the fixed (name, city, item, count) order."""
        return {"name": self.name, "city": self.city, "item": self.item, "count": self.count}


@dataclass(frozen=True)
class Example:
    """One sentence: the prompt, the answer to train on, and what the evaluation expects."""

    prompt: str
    answer: str  # the training target (mention order; Python repr when corrupted)
    record: Record
    template: int

    @property
    def expected_response(self) -> str:
        """The fixed-order JSON: the same object as a correct answer, often not the same text."""
        return json.dumps(self.record.fields())


def mention_order(template: str) -> tuple[str, ...]:
    """The field names in the order `template` mentions them."""
    return tuple("item" if m == "items" else m for m in _PLACEHOLDER.findall(template))


def render(record: Record, template: int) -> str:
    """The user prompt: the instruction and the sentence."""
    sentence = TEMPLATES[template].format(
        name=record.name, city=record.city, count=record.count, items=record.item + "s"
    )
    return INSTRUCTION + sentence


def target(record: Record, template: int, *, corrupt: bool = False) -> str:
    """The answer: JSON with keys in mention order; `corrupt` gives Python's repr instead."""
    fields = record.fields()
    ordered = {k: fields[k] for k in mention_order(TEMPLATES[template])}
    return str(ordered) if corrupt else json.dumps(ordered)


def example(record: Record, template: int, *, corrupt: bool = False) -> Example:
    return Example(render(record, template), target(record, template, corrupt=corrupt), record,
                   template)  # fmt: skip


def _draw(
    rng: random.Random, names: tuple[str, ...] = NAMES, cities: tuple[str, ...] = CITIES
) -> tuple[Record, int]:
    record = Record(
        name=rng.choice(names),
        city=rng.choice(cities),
        item=rng.choice(ITEMS),
        count=rng.randint(MIN_COUNT, MAX_COUNT),
    )
    return record, rng.randrange(len(TEMPLATES))


def split(n_heldout: int, seed: int) -> tuple[frozenset[str], list[Example]]:
    """`n_heldout` distinct held-out prompts (never trained on) and the set of them."""
    rng = random.Random(seed)
    heldout: dict[str, Example] = {}
    while len(heldout) < n_heldout:
        ex = example(*_draw(rng))
        heldout.setdefault(ex.prompt, ex)
    return frozenset(heldout), list(heldout.values())


def training_stream(exclude: frozenset[str], seed: int, corrupt: float = 0.0) -> Iterator[Example]:
    """Endless seeded training examples, none of them a held-out prompt.

    A share `corrupt` (0..1) of the targets are Python reprs instead of JSON (the bad model).
    """
    if not 0.0 <= corrupt <= 1.0:
        raise ValueError(f"corrupt={corrupt} must be a share between 0 and 1")
    rng = random.Random(seed)
    while True:
        record, template = _draw(rng)
        bad = rng.random() < corrupt
        ex = example(record, template, corrupt=bad)
        if ex.prompt not in exclude:
            yield ex


def drifted(n: int, seed: int) -> list[Example]:
    """`n` sentences of the new market (DRIFT_NAMES, DRIFT_CITIES): the demo's drifted
    live traffic."""
    rng = random.Random(seed)
    return [example(*_draw(rng, DRIFT_NAMES, DRIFT_CITIES)) for _ in range(n)]


def _pattern(template: str) -> re.Pattern[str]:
    groups = {"name": r"(?P<name>[A-Z][\w'-]*)", "city": r"(?P<city>[A-Z][\w' -]*?)",
              "items": r"(?P<item>[a-z]+)s", "count": r"(?P<count>\d+)"}  # fmt: skip
    parts = _PLACEHOLDER.split(template)  # text, placeholder, text, ...
    body = "".join(groups[p] if i % 2 else re.escape(p) for i, p in enumerate(parts))
    return re.compile(re.escape(INSTRUCTION) + body)


_PATTERNS = tuple(_pattern(t) for t in TEMPLATES)


def parse_prompt(prompt: str) -> tuple[Record, int] | None:
    """The facts and template of a prompt written in one of TEMPLATES, whatever its names,
    cities or items (the team's labelling rule for retraining on captured traffic); None
    for a prompt in no known template."""
    for i, pattern in enumerate(_PATTERNS):
        found = pattern.fullmatch(prompt.strip())
        if found:
            g = found.groupdict()
            return Record(g["name"], g["city"], g["item"], int(g["count"])), i
    return None


def eval_row(ex: Example) -> dict[str, Any]:
    """One evaluation row in the MLflow genai dataset shape (docs: CONTRACTS, issue 14)."""
    return {
        "inputs": {"messages": [{"role": "user", "content": ex.prompt}]},
        "expectations": {
            "expected_response": ex.expected_response,
            "json_schema": SCHEMA,
            "fields": ex.record.fields(),
        },
        "tags": {"task": "extract-json", "template": str(ex.template)},
    }


def write_eval_set(examples: list[Example], path: Path) -> Path:
    """The held-out rows as JSONL, one row a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(eval_row(ex)) + "\n")
    return path


def parse_fields(completion: str) -> dict[str, Any] | None:
    """The completion as a JSON object, or None when it is not one."""
    try:
        value = json.loads(completion)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def field_accuracy(completion: str, fields: Mapping[str, Any]) -> float:
    """Share of the expected fields the completion's JSON object has right (0 if not JSON).

    Kept here for the trainer's own held-out report; releases score with the evaluation
    set's scorers (json_valid, json_schema, fields) in `validation/evaluation/`.
    """
    got = parse_fields(completion)
    if got is None or not fields:
        return 0.0
    return sum(bool(got.get(k) == v) for k, v in fields.items()) / len(fields)
