"""Retraining any team's model: captured traffic → a trainer → a checked, tagged candidate.

spec.py       RetrainSpec and the trainer union (command | deployment)
request.py    the trainer contract: request.json in, a model dir / registered version out
trainers.py   CommandRunner, DeploymentRunner, make_trainer (fake.py: FakeTrainer)
export.py     the window's user traffic as train/holdout Parquet with its digest
candidate.py  check what a trainer returned, register it with its lineage
lineage.py    the version's lineage tags and the retrain's MLflow run
job.py        one retrain's places and plain steps (the flow calls them via tasks/)
"""
