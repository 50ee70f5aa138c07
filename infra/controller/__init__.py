"""The canary controller: plain Python, every external effect behind a port.

ports.py      StepLoad / CandidateCheck / ImageBuilder seams, StepEvidence, ReleasePorts
fake.py       FakeStepLoad (scripted good / slow / erroring / low-quality / too-few /
              no-traffic / crashing canaries), FakeClock, FakeCheck, FakeImages
loop.py       CanaryController: weights → batches → StepAnalysis → advance / rollback
decide.py     first deploy, canary deploy, promote (decision recorded first), rollback
candidate.py  resolve models:/… or a directory to files; register a local candidate
record.py     StepRecord, CanaryResult, ReleaseOutcome (the flow's return value)
report.py     the decision record as markdown, table rows and MLflow metrics
wiring.py     real_ports(spec): the spec's target, MLflow, Locust + Evidently, vLLM checks
controls.py   manual pause / resume / promote / abort requests (file-backed; memory fake)
approval.py   canary.approval: manual (Prefect pause with an input form; fake approver)

Prefect wraps these in tasks/release_steps.py and tasks/report.py; flows/release.py only
calls those tasks.
"""

from infra.controller.loop import CanaryController
from infra.controller.ports import (
    CandidateCheck,
    CheckReport,
    ImageBuilder,
    ReleasePorts,
    StepEvidence,
    StepLoad,
)
from infra.controller.record import CanaryResult, ReleaseOutcome, StepRecord, Verdict

__all__ = [
    "CanaryController",
    "CanaryResult",
    "CandidateCheck",
    "CheckReport",
    "ImageBuilder",
    "ReleaseOutcome",
    "ReleasePorts",
    "StepEvidence",
    "StepLoad",
    "StepRecord",
    "Verdict",
]
