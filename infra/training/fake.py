"""FakeTrainer: the Trainer interface without a process, for unit tests of the retrain path.

trainer = FakeTrainer(copy_from=fixture_dir)        # copies a model dir into output_dir
trainer = FakeTrainer(error=TrainerFailedError("exit 1"))
trainer.requests                                    # every TrainingRequest it was given
"""

from __future__ import annotations

import shutil
from pathlib import Path

from infra.errors import TrainingError
from infra.training.request import TrainerResult, TrainingRequest


class FakeTrainer:
    def __init__(
        self,
        copy_from: Path | None = None,
        *,
        model_uri: str | None = None,
        error: TrainingError | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        self.copy_from = copy_from
        self.model_uri = model_uri
        self.error = error
        self.tags = tags or {}
        self.requests: list[TrainingRequest] = []

    def describe(self) -> str:
        return "fake trainer"

    def parameters(self) -> dict[str, str]:
        return {"copy_from": str(self.copy_from), "model_uri": str(self.model_uri)}

    def train(self, request_path: Path, output_dir: Path) -> TrainerResult:
        self.requests.append(TrainingRequest.read(request_path))
        if self.error is not None:
            raise self.error
        if self.model_uri is not None:
            return TrainerResult(model_uri=self.model_uri, tags=self.tags)
        if self.copy_from is None:
            raise ValueError("FakeTrainer needs copy_from, model_uri or error")
        shutil.copytree(self.copy_from, output_dir / "model")
        return TrainerResult(model_dir=str(output_dir / "model"), tags=self.tags)
