"""The offline check owns its rows: a candidate's golden.jsonl is ignored unless the spec
allows it; bad sets and bad models are named errors; candidate and champion share rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.controller.wiring import OfflineCheck
from infra.spec import ReleaseSpec
from tests.fixtures import broken
from validation.quality import Answerer, FakeAnswerer

N = 80
MARGIN = 0.1  # 80 rows are enough for it (rows_needed: 65)


def release_set(path: Path, n: int = N) -> Path:
    rows = [{"inputs": {"prompt": f"capital of country {i}?"},
             "expectations": {"expected_response": f"City {i}"}} for i in range(n)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def spec(model: Path, **evaluation: Any) -> ReleaseSpec:
    return ReleaseSpec.model_validate(
        {
            "model": str(model),
            "evaluation": {
                "scorers": [{"kind": "normalized"}],
                "margin": MARGIN,
                "threshold": 0.5,
                **evaluation,
            },
        }
    )


class Answers:
    """Per model dir: a FakeAnswerer; records which prompts each model was asked."""

    def __init__(self, by_dir: dict[Path, Answerer]) -> None:
        self.by_dir = by_dir
        self.max_tokens: list[int] = []

    def __call__(self, model_dir: Path, max_tokens: int) -> Answerer:
        self.max_tokens.append(max_tokens)
        return self.by_dir[model_dir]


def city(right_up_to: int) -> FakeAnswerer:
    def answer(prompt: str) -> str:
        i = int(prompt.split()[-1].rstrip("?"))
        return f"city {i}." if i < right_up_to else "no idea"

    return FakeAnswerer(answer)


def test_a_candidates_own_golden_set_is_ignored(untrained_model: Path, tmp_path: Path) -> None:
    # The candidate ships golden.jsonl (its arithmetic rows, answered perfectly)…
    golden = [json.loads(x) for x in (untrained_model / "golden.jsonl").read_text().splitlines()]
    cheat = FakeAnswerer({g["prompt"]: g["answer"] for g in golden})
    answers = Answers({untrained_model: cheat})
    s = spec(untrained_model, path=str(release_set(tmp_path / "eval.jsonl")))
    report = OfflineCheck(s, answerer=answers).check(untrained_model, None)
    # …but is judged on the release's rows, which it cannot answer.
    assert not report.passed
    assert "pass rate 0.000 (0/80)" in report.reasons[0]
    assert all(p.startswith("capital") for p in cheat.calls[0])
    assert report.tags["canaryflow.eval_candidate_supplied"] == "false"
    assert report.tags["canaryflow.eval_rows"] == str(N)


def test_candidate_golden_counts_only_when_allowed_and_is_recorded(untrained_model: Path) -> None:
    golden = [json.loads(x) for x in (untrained_model / "golden.jsonl").read_text().splitlines()]
    answers = Answers({untrained_model: FakeAnswerer({g["prompt"]: g["answer"] for g in golden})})
    with pytest.raises(ValueError, match="allow_candidate_golden"):
        spec(untrained_model)
    s = spec(untrained_model, allow_candidate_golden=True, scorers=[{"kind": "exact"}])
    report = OfflineCheck(s, answerer=answers).check(untrained_model, None)
    assert report.passed, report.reasons
    assert report.tags["canaryflow.eval_candidate_supplied"] == "true"
    assert report.metrics["eval.pass_rate"] == 1.0


def test_champion_answers_the_same_rows_and_a_worse_candidate_fails(
    untrained_model: Path, tmp_path: Path
) -> None:
    champion_dir = tmp_path / "champion"
    champion_dir.mkdir()
    champ, cand = city(N), city(N - 20)  # candidate loses 20 of 80 rows
    answers = Answers({untrained_model: cand, champion_dir: champ})
    s = spec(untrained_model, path=str(release_set(tmp_path / "eval.jsonl")))
    report = OfflineCheck(s, answerer=answers).check(untrained_model, champion_dir)
    assert champ.calls == cand.calls  # same rows, same order
    assert not report.passed
    assert "not non-inferior" in report.reasons[0]
    assert report.metrics["eval.paired.pass.diff"] == -0.25
    assert report.metrics["eval.paired.pass.discordant_champion"] == 20
    # One row lost of 80 is within the margin.
    answers.by_dir[untrained_model] = city(N - 1)
    assert OfflineCheck(s, answerer=answers).check(untrained_model, champion_dir).passed


@pytest.mark.parametrize(("setup", "error"), [
    (lambda d, p: p.write_text(""), "EvaluationSetEmptyError"),
    (lambda d, p: p.unlink(), "EvaluationSetMissingError"),
    (lambda d, p: p.write_text('{"inputs": {"prompt": "x"}, "expectations": {"regex": 3}}\n'),
     "EvaluationSetMalformedError: evaluation row 1, column 'expectations.regex'"),
    (lambda d, p: release_set(p, 10), "TooFewRowsError"),
    (lambda d, p: broken.remove_chat_template(d), "TokenizerError"),
])  # fmt: skip
def test_bad_input_is_a_named_reason_and_nothing_is_answered(
    untrained_model: Path, tmp_path: Path, setup: Any, error: str
) -> None:
    path = release_set(tmp_path / "eval.jsonl")
    setup(untrained_model, path)
    answers = Answers({})
    report = OfflineCheck(spec(untrained_model, path=str(path)), answerer=answers).check(
        untrained_model, None
    )
    assert report.reasons[0].startswith(error), report.reasons
    assert answers.max_tokens == []  # no model was loaded


def test_scorer_needing_missing_expectations_or_unknown_is_refused(
    untrained_model: Path, tmp_path: Path
) -> None:
    path = str(release_set(tmp_path / "eval.jsonl"))
    for scorers, error in (([{"kind": "json_schema"}], "MissingExpectationsError"),
                           ([{"kind": "bleu"}], "UnknownScorerError")):  # fmt: skip
        s = spec(untrained_model, path=path, scorers=scorers)
        report = OfflineCheck(s, answerer=Answers({})).check(untrained_model, None)
        assert report.reasons[0].startswith(error), report.reasons


def test_serving_defaults_come_from_the_model_and_the_set(
    untrained_model: Path, tmp_path: Path
) -> None:
    answers = Answers({untrained_model: city(N)})
    path = str(release_set(tmp_path / "eval.jsonl"))
    report = OfflineCheck(spec(untrained_model, path=path), answerer=answers).check(
        untrained_model, None
    )
    declared = json.loads((untrained_model / "config.json").read_text())["max_position_embeddings"]
    assert report.metrics["serving.max_model_len"] == declared
    longest = report.metrics["load.max_tokens"]
    assert answers.max_tokens == [longest]
    assert 4 < longest < 40  # "City 79" + headroom
    too_long = spec(untrained_model, path=path).model_copy(
        update={"serving": spec(untrained_model, path=path).serving.model_copy(
            update={"max_model_len": declared * 4})})  # fmt: skip
    refused = OfflineCheck(too_long, answerer=answers).check(untrained_model, None)
    assert refused.reasons[0].startswith("ConfigError")
    assert "exceeds what the model supports" in refused.reasons[0]
    broken.set_config(untrained_model, rope_scaling={"rope_type": "linear", "factor": 4.0})
    assert OfflineCheck(too_long, answerer=answers).check(untrained_model, None).passed


def test_step_load_sends_the_release_rows(untrained_model: Path, tmp_path: Path) -> None:
    check = OfflineCheck(spec(untrained_model, path=str(release_set(tmp_path / "e.jsonl"))))
    load = check.step_load(target=None, model_dir=untrained_model, out_dir=tmp_path)  # type: ignore[arg-type]
    rows = [json.loads(x) for x in load.reference.read_text().splitlines()]
    assert len(rows) == N
    assert rows[0]["prompt"].startswith("capital")
    assert load.spec.load.max_tokens == check.max_tokens(untrained_model)
