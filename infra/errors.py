"""Every named error canaryflow raises, in one tree.

A failed release names one of these; its message says what is wrong and what to do.

CanaryflowError
├── SpecError                        a release spec or setting is invalid (e.g. unknown target)
│   └── ApprovalUnavailableError     canary.approval: manual, but nobody could give it (no flow run)
├── ControlError                     a manual action on a release was refused; nothing changed
│   ├── UnknownReleaseError          no release with that id under the state dir
│   ├── ReleaseNotRunningError       the release has finished (its verdict is named)
│   ├── ReleaseDecidedError          a promote or abort was already applied to it
│   ├── ApprovalNotPendingError      the release is not waiting for an approval
│   └── ApprovalTimedOutError        the approval came after its timeout (it rolled back)
├── ValidationError                  the candidate is rejected before anything is deployed
│   ├── ArtifactError                files, config or tokenizer are broken
│   │   ├── MissingFileError         a required model file is absent
│   │   ├── ConfigError              config.json unreadable or inconsistent
│   │   ├── TokenizerError           tokenizer does not load or has no chat template
│   │   ├── SafetensorsError         corrupt/truncated safetensors or tensor shapes off
│   │   └── ChecksumMismatchError    files differ from the sha256 manifest
│   ├── UnsupportedModelError        architecture or head_dim the serving flavor cannot run
│   ├── MemoryFitError               weights + KV cache exceed the target's memory budget
│   ├── QualityGateError             evaluation score under threshold or regressed vs champion
│   └── EvaluationSetError           the release's evaluation set cannot judge this release
│       ├── EvaluationSetMissingError    the named file / MLflow dataset does not exist
│       ├── EvaluationSetEmptyError      the set holds no rows
│       ├── EvaluationSetMalformedError  a row is malformed (row N, column X named)
│       ├── MissingExpectationsError     a scorer needs expectations some rows lack
│       ├── UnknownScorerError           the spec names a scorer that does not exist
│       └── TooFewRowsError              too few rows for the non-inferiority margin asked
├── RegistryError                    the model registry refused or failed
│   ├── RegistryUnreachableError     tracking URI cannot be reached
│   ├── ModelVersionNotFoundError    no such version / alias
│   └── RejectedVersionError         asked to release a version already tagged rejected
├── DeployError                      a deploy target could not do what was asked
│   ├── EngineUnavailableError       the Docker engine does not answer
│   ├── ContainerStartError          a variant's container exited or never became healthy
│   ├── TargetBusyError              another release's canary is deployed: reconcile first
│   ├── NoStableError                a rollback has no stable to send traffic to
│   ├── CanaryUnhealthyError         refusing to promote a canary that is not healthy
│   ├── RouterError                  HAProxy or Prometheus failed to start, configure or answer
│   ├── ClusterUnavailableError      the Kubernetes API cannot be reached or rejects credentials
│   ├── KubernetesForbiddenError     RBAC forbids a call (names the verb, resource, Role)
│   ├── KubernetesNotFoundError      a namespace, Secret or CRD the target needs is absent
│   │   └── ClusterUnsupportedError  the server lacks an API group or version the overlay needs
│   └── QuotaExceededError           a ResourceQuota refused objects or pods
│   (under ContainerStartError: ImagePullError, CrashLoopError, RolloutTimeoutError)
├── MetricSourceError                a metric source failed (unreachable, bad answer, unsupported)
│   └── NoDataError                  no data for this metric/variant/window: check inconclusive
├── DriftError                       the drift report could not be computed
├── LoadError                        load could not be sent through the router, or gave no evidence
│   ├── LocustMissingError           locust not installed in the pipeline env
│   ├── PromptSourceError            golden/replay/synthetic source gave no usable prompts
│   ├── RouterUnreachableError       router did not answer the probe before the start
│   ├── LoadTimeoutError             Locust overran the hard timeout; process group killed
│   ├── LocustFailedError            Locust exited non-zero (log tail in the message)
│   ├── NoRequestsCompletedError     not one request got an HTTP response
│   ├── NoTrafficError               no user traffic in the window and the load is disabled
│   └── PairedWindowError            the paired window could not reach both variants directly
├── ImageBuildError                  the serving image could not be built (wheelhouse, base, build)
│   └── ImagePushError               the registry (serving.registry) refused the push
├── SmokeTestError                   the built image does not serve correctly; names the check
├── TrainingError                    a candidate could not be trained (nothing registered)
│   ├── NotEnoughTrainingDataError   too few captured user requests in the window
│   ├── EvaluationLeakError          training data would contain evaluation-set prompts
│   ├── TrainerStartError            the trainer does not exist or cannot be started
│   ├── TrainerFailedError           the trainer exited non-zero / its run failed (log tail)
│   ├── TrainerTimeoutError          the trainer overran timeout_s (process group killed)
│   └── TrainerOutputError           no result, or a model directory that fails its checks
└── ReleaseFailedError               a release ended with verdict `error`: it could not be judged
                                     (the record is written; `.outcome` holds it)

The git hook's errors (spec at a commit, install, emit) are in infra/githook/errors.py;
the spec ones are SpecErrors. Inside the serving image, serving/errors.py has its own small
tree (ServingError: settings, start, warmup) because the image ships serving/ alone.
"""

from __future__ import annotations


class CanaryflowError(Exception):
    """Base of every canaryflow error; `str(e)` is the message shown to the user."""


class SpecError(CanaryflowError):
    """A release spec or setting is invalid; nothing was started."""


class ApprovalUnavailableError(SpecError):
    """canary.approval is manual but the release runs where nobody can approve it (outside a
    Prefect flow run with an API server); refused before anything is deployed."""


class ControlError(CanaryflowError):
    """A manual action (canaryflow pause|resume|promote|abort|approve) was refused; the
    release and what serves are unchanged. The message says why and what to do."""


class UnknownReleaseError(ControlError):
    """No release with that id under the state dir; `canaryflow status` lists them."""


class ReleaseNotRunningError(ControlError):
    """The release has finished; its verdict stands (start a new release to change it)."""


class ReleaseDecidedError(ControlError):
    """A promote or abort was already applied; the release is finishing it."""


class ApprovalNotPendingError(ControlError):
    """The release is not waiting for an approval (not yet at the end, or no approval asked)."""


class ApprovalTimedOutError(ControlError):
    """The approval came after its timeout: the release was rolled back."""


class ValidationError(CanaryflowError):
    """The candidate failed a pre-deploy check; nothing was registered or deployed."""


class ArtifactError(ValidationError):
    """The model directory is incomplete or damaged."""


class MissingFileError(ArtifactError):
    """A file vLLM needs is missing from the model directory."""


class ConfigError(ArtifactError):
    """config.json is missing fields, unparsable, or inconsistent."""


class TokenizerError(ArtifactError):
    """The tokenizer cannot be loaded or lacks a chat template."""


class SafetensorsError(ArtifactError):
    """A safetensors file is corrupt, truncated, or its tensors don't match config.json."""


class ChecksumMismatchError(ArtifactError):
    """The files differ from the sha256 manifest written at package time."""


class UnsupportedModelError(ValidationError):
    """The serving flavor cannot run this architecture or attention shape."""


class MemoryFitError(ValidationError):
    """Weights plus KV cache do not fit in the target's memory budget."""


class QualityGateError(ValidationError):
    """The golden-set score is below the threshold or regressed against the champion."""


class EvaluationSetError(ValidationError):
    """The release's evaluation set or its scorers cannot judge this release; nothing changed."""


class EvaluationSetMissingError(EvaluationSetError):
    """The evaluation file or MLflow evaluation dataset the spec names does not exist."""


class EvaluationSetEmptyError(EvaluationSetError):
    """The evaluation set holds no rows."""


class EvaluationSetMalformedError(EvaluationSetError):
    """A row of the evaluation set is malformed; the message names the row and the column."""


class MissingExpectationsError(EvaluationSetError):
    """A scorer needs an expectation (e.g. expected_response) that some rows lack."""


class UnknownScorerError(EvaluationSetError):
    """The spec names a scorer kind that does not exist; the message lists the known ones."""


class JudgeUnreachableError(EvaluationSetError):
    """A judge scorer's endpoint does not answer, refuses the key, or lacks the model."""


class JudgeAnswerError(EvaluationSetError):
    """A judge scorer's model answered something other than a yes/no judgement."""


class TooFewRowsError(EvaluationSetError):
    """The set has fewer rows than the non-inferiority margin needs; the message says how many."""


class RegistryError(CanaryflowError):
    """The model registry refused an operation or failed."""


class RegistryUnreachableError(RegistryError):
    """The tracking URI could not be reached."""


class ModelVersionNotFoundError(RegistryError):
    """The requested model version or alias does not exist."""


class RejectedVersionError(RegistryError):
    """The requested version was rejected by an earlier release (its tag says why)."""


class DeployError(CanaryflowError):
    """A deploy target failed to deploy, re-weight, promote or roll back."""


class TrainingError(CanaryflowError):
    """A candidate could not be trained; nothing was registered or released."""


class NotEnoughTrainingDataError(TrainingError):
    """The window holds fewer usable captured user requests than training needs."""


class EvaluationLeakError(TrainingError):
    """Training data would contain prompts of the release's evaluation set."""


class TrainerStartError(TrainingError):
    """The trainer (command or deployment) does not exist or could not be started."""


class TrainerFailedError(TrainingError):
    """The trainer exited non-zero or its flow run failed; the message has its log tail."""


class TrainerTimeoutError(TrainingError):
    """The trainer overran its timeout_s; a command's process group was killed."""


class TrainerOutputError(TrainingError):
    """The trainer left no usable result: no result.json, or a model that fails its checks."""


class LoadError(CanaryflowError):
    """Load could not be sent through the router, or it yielded no evidence."""


class LocustMissingError(LoadError):
    """Locust is not installed where the pipeline runs it (`python -m locust`)."""


class PromptSourceError(LoadError):
    """The golden, replay or synthetic prompt source gave no usable prompts."""


class RouterUnreachableError(LoadError):
    """The router URL did not answer an HTTP probe before the load started."""


class LoadTimeoutError(LoadError):
    """Locust overran the hard timeout; its process group was killed."""


class LocustFailedError(LoadError):
    """Locust exited non-zero (bad locustfile, bad option, crash)."""


class NoRequestsCompletedError(LoadError):
    """Locust ran but no request got an HTTP response: nothing to analyse."""


class NoTrafficError(LoadError):
    """No user traffic reached the variants and the load is disabled: nothing to judge.

    The step must wait (pause) and say so; it is never a pass.
    """


class PairedWindowError(LoadError):
    """The paired window cannot send to both variants directly (no endpoint, not loopback)."""


class MetricSourceError(CanaryflowError):
    """A metric source failed (unreachable, malformed answer, unsupported metric)."""


class NoDataError(MetricSourceError):
    """The source has no data for this metric, variant and window: the check is inconclusive."""


class DriftError(CanaryflowError):
    """The drift report could not be computed from the given frames."""


class ReleaseFailedError(CanaryflowError):
    """A release could not be judged (verdict `error`); raised by the release flow after its
    decision record is written, so Prefect marks the run failed. `outcome` is the record."""

    def __init__(self, message: str, outcome: object = None) -> None:
        super().__init__(message)
        self.outcome = outcome


class ImageBuildError(CanaryflowError):
    """The serving image could not be built; the message names the step and the last output."""


class ImagePushError(ImageBuildError):
    """The built image could not be pushed to serving.registry; nothing was deployed."""


class SmokeTestError(CanaryflowError):
    """A smoke check against a running container failed; the message names the check."""


class EngineUnavailableError(DeployError):
    """The Docker engine cannot be reached; nothing was changed."""


class ContainerStartError(DeployError):
    """The container exited or was not healthy in time (a new one is removed); log quoted."""


class TargetServesAnotherModelError(DeployError):
    """The target serves another registered model: one target serves one model, and a
    release of a second one there would replace the first under its clients."""


class TargetBusyError(DeployError):
    """A canary from another release is deployed; promote or roll it back first (reconcile)."""


class NoStableError(DeployError):
    """Rollback would leave no server: the canary is the only variant deployed."""


class CanaryUnhealthyError(DeployError):
    """The canary is not healthy, so it is not given all traffic; roll back instead."""


class RouterError(DeployError):
    """HAProxy or Prometheus failed; the message names the process, its log and what to do."""


# -- Kubernetes target (infra/targets/kubernetes.py) ----------------------------------------


class ClusterUnavailableError(DeployError):
    """The Kubernetes API server cannot be reached or rejects the credentials; nothing changed."""


class KubernetesForbiddenError(DeployError):
    """RBAC forbids a call (403); the message names the verb, resource and the Role to grant."""


class KubernetesNotFoundError(DeployError):
    """A namespace, Secret or CRD (Gateway API, KServe) the target needs is absent (404)."""


class ClusterUnsupportedError(KubernetesNotFoundError):
    """The API server is too old or does not serve an API group the overlay needs (a CRD)."""


class QuotaExceededError(DeployError):
    """A ResourceQuota in the namespace refused the objects or pods; the message quotes it."""


class ImagePullError(ContainerStartError):
    """A pod cannot pull the serving image (ErrImagePull, ImagePullBackOff, bad name)."""


class CrashLoopError(ContainerStartError):
    """The serving container keeps crashing; the message has its last exit state and log."""


class RolloutTimeoutError(ContainerStartError):
    """A Deployment did not become Ready within its progress deadline (e.g. unschedulable)."""
