"""Prefect task: train the demo model."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from infra.demo_model.train import TrainConfig, TrainResult, train


@task(name="train-demo-model", timeout_seconds=1800, log_prints=True)
def train_demo_model(config: TrainConfig, out_dir: Path) -> TrainResult:
    """Train the demo chat model into `out_dir` and measure exact match."""
    return train(config, out_dir)
