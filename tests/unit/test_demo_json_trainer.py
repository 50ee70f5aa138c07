"""The second demo model's retrain pieces: its labelling rule reads any sentence of its
templates (names and cities it never saw included), its trainer fine-tunes the champion on
the labelled export through the trainer contract, and prefect.yaml's retrain deployment for
it points at its own target and evaluation set."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import pytest
import yaml

from infra.demo.__main__ import EXPECTED
from infra.demo.json_chain import RETRAIN, FieldTally
from infra.demo.second_model import JSON_DATASET, JSON_NAME, JSON_TARGET, json_evaluation
from infra.demo_model_json import task, trainer
from infra.demo_model_json.train import JsonTrainConfig, mixed, train
from infra.errors import TrainingError
from infra.training.request import (
    ChampionRef,
    DataRef,
    TrainingRequest,
    Trigger,
    read_result,
)
from infra.training.spec import RetrainSpec
from validation.artifact import check_artifact

ROOT = Path(__file__).resolve().parents[2]
TINY = {"steps": 3, "n_heldout": 10, "batch_size": 8}


def test_the_labelling_rule_reads_every_template_whatever_the_names() -> None:
    rng = random.Random(3)
    usual = [task.example(*task._draw(rng)) for _ in range(500)]
    for ex in usual + task.drifted(500, seed=4):
        parsed = task.parse_prompt(ex.prompt)
        assert parsed is not None, ex.prompt
        assert parsed[0] == ex.record
        assert task.target(*parsed) == ex.answer  # the same keys in the same order
    assert {ex.template for ex in usual} == set(range(len(task.TEMPLATES)))
    for other in ("Extract as JSON: the weather is fine.", "Maria ordered 3 lamps.", ""):
        assert task.parse_prompt(other) is None


def test_the_new_market_is_what_the_training_stream_never_shows() -> None:
    names = {ex.record.name for ex in task.drifted(300, seed=1)}
    cities = {ex.record.city for ex in task.drifted(300, seed=1)}
    assert not names & set(task.NAMES)
    assert not cities & set(task.CITIES)
    # longer prompts: the drift check's prompt_length sees the move, not only its classifier
    usual = sum(len(task.render(*task._draw(random.Random(i)))) for i in range(300)) / 300
    assert sum(len(ex.prompt) for ex in task.drifted(300, seed=1)) / 300 > usual + 8


def test_labelled_skips_and_counts_what_no_template_reads() -> None:
    known = [ex.prompt for ex in task.drifted(5, seed=2)]
    examples, unknown = trainer.labelled([*known, known[0], "Extract as JSON: hi there"])
    assert [ex.prompt for ex in examples] == list(dict.fromkeys(known))
    assert unknown == 1


def test_mixed_draws_its_share_from_the_observed_examples() -> None:
    observed = task.drifted(20, seed=5)
    stream = task.training_stream(frozenset(), seed=1)
    drawn = [next(s) for s in [mixed(stream, observed, 0.5, seed=0)] for _ in range(2000)]
    share = sum(ex in observed for ex in drawn) / len(drawn)
    assert 0.45 < share < 0.55
    plain = mixed(task.training_stream(frozenset(), seed=1), observed, 0.0, seed=0)
    again = task.training_stream(frozenset(), seed=1)
    assert [next(plain) for _ in range(50)] == [next(again) for _ in range(50)]


def test_the_field_tally_accepts_any_key_order_and_counts_fields() -> None:
    want = json.dumps({"name": "Ana", "city": "Oslo", "item": "mug", "count": 3})
    tally = FieldTally()
    assert tally('{"count": 3, "city": "Oslo", "name": "Ana", "item": "mug"}', want)
    assert not tally('{"name": "Ana", "city": "Oslo", "item": "mug", "count": 4}', want)
    assert not tally("{'name': 'Ana', 'city': 'Oslo', 'item': 'mug', 'count': 3}", want)
    # 1 + 3/4 + 0 fields right over 4 requests, one of which never came back
    assert tally.share(4) == pytest.approx(1.75 / 4)
    assert FieldTally().share(0) == 0.0


def _request(tmp: Path, champion: Path | None, prompts: list[str]) -> Path:
    data = tmp / "data"
    data.mkdir()
    cut = int(len(prompts) * 0.8)
    for part, rows in (("train", prompts[:cut]), ("holdout", prompts[cut:])):
        pd.DataFrame({"prompt": rows, "completion": ["{}"] * len(rows)}).to_parquet(
            data / f"{part}.parquet"
        )
    out = tmp / "out"
    out.mkdir()
    request = TrainingRequest(
        model_name=JSON_NAME,
        champion=ChampionRef(
            uri=f"models:/{JSON_NAME}/1" if champion else None,
            version="1" if champion else None,
            model_dir=str(champion) if champion else None,
        ),
        data=DataRef(
            train=str(data / "train.parquet"),
            holdout=str(data / "holdout.parquet"),
            digest="sha256:0",
            window_start=0.0,
            window_end=1.0,
            n_train=cut,
            n_holdout=len(prompts) - cut,
            columns=["prompt", "completion"],
        ),
        trigger=Trigger(kind="drift", event_id="e1"),
        output_dir=str(out),
    )
    return request.write(tmp / "request.json")


def test_the_trainer_fine_tunes_the_champion_through_the_contract(tmp_path: Path) -> None:
    champion = train(JsonTrainConfig(**TINY), tmp_path / "champion").out_dir
    prompts = [ex.prompt for ex in task.drifted(40, seed=6)]
    request = _request(tmp_path, champion, prompts)
    assert trainer.main([str(request), "--steps", "1", "--min-labelled", "5"]) == 0
    result = read_result(tmp_path / "out", "json trainer")
    model_dir = Path(str(result.model_dir))
    assert check_artifact(model_dir, "cpu").architecture == "Qwen2ForCausalLM"
    # the champion's own config (its seed and held-out split fix the tokenizer), 1 step on
    info = json.loads((model_dir / "canaryflow_training.json").read_text())
    assert info["config"]["base"] == str(champion)
    assert info["config"]["n_heldout"] == 10
    assert info["observed_examples"] == 32  # the train split's prompts, all labelled
    assert (model_dir / "tokenizer.json").read_bytes() == (champion / "tokenizer.json").read_bytes()
    assert {"field_accuracy", "json_valid", "labelled_prompts", "holdout_fields_candidate",
            "holdout_fields_champion"} <= set(result.metrics)  # fmt: skip
    assert json.loads(result.tags["extract_json.fine_tune"])["steps"] == 1


def test_a_fine_tune_keeps_the_champions_schedule_unless_told(tmp_path: Path) -> None:
    champion = tmp_path / "champion"
    champion.mkdir()
    trained = JsonTrainConfig(steps=7, lr=3e-3, n_heldout=10, seed=4, corrupt=0.5)
    (champion / "canaryflow_training.json").write_text(json.dumps({"config": trained.model_dump()}))
    again = trainer.champion_config(champion, None, None)
    assert (again.steps, again.lr, again.seed, again.n_heldout) == (7, 3e-3, 4, 10)
    assert again.corrupt == 0.0  # JSON targets
    assert again.base == str(champion)
    told = trainer.champion_config(champion, 2, 1e-4)
    assert (told.steps, told.lr) == (2, 1e-4)
    # a champion with no record of its training: this trainer's own defaults
    bare = tmp_path / "bare"
    bare.mkdir()
    plain = trainer.champion_config(bare, None, None)
    assert (plain.steps, plain.lr) == (JsonTrainConfig().steps, JsonTrainConfig().lr)


def test_the_trainer_refuses_traffic_it_cannot_label(tmp_path: Path) -> None:
    request = _request(tmp_path, None, ["Extract as JSON: what a day"] * 3 + ["hello"] * 7)
    with pytest.raises(TrainingError, match=r"0 of 2 distinct exported prompts .* at least 20"):
        trainer.main([str(request)])
    assert not (tmp_path / "out" / "result.json").exists()


def test_prefect_yaml_retrains_extract_json_on_its_own_target_and_set() -> None:
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    (dep,) = [d for d in deployments if f"retrain/{d['name']}" == RETRAIN]
    spec = RetrainSpec.model_validate(dep["parameters"]["spec"])
    assert spec.model_name == JSON_NAME
    assert spec.release_spec["target_settings"] == JSON_TARGET
    evaluation = spec.release_spec["evaluation"]
    assert evaluation == {k: v for k, v in json_evaluation().items() if k in evaluation}
    assert evaluation["dataset"] == JSON_DATASET
    (trigger,) = dep["triggers"]
    assert trigger["match"]["prefect.resource.id"] == f"canaryflow.model.{JSON_NAME}"
    assert "infra.demo_model_json.trainer" in spec.trainer.describe()
    assert EXPECTED["json drift-check"] == "drift"
    assert EXPECTED["json retrained"] == "promoted"
