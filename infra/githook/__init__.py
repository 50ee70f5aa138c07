"""Git push → Prefect: a post-receive hook that emits `canaryflow.git.push` (DESIGN §2).

    python -m infra.githook install --repo /srv/git/models.git \
        --api-url http://127.0.0.1:4200/api [--spec release.yaml] [--branches refs/heads/main]
    git push ...        # remote: canaryflow: sent canaryflow.git.push refs/heads/main 1f2e3d...

The event, for the release deployment's trigger (prefect.yaml):

    event:    canaryflow.git.push
    resource: {"prefect.resource.id": "canaryflow.repo.<name>", "prefect.resource.name": <name>}
    payload:  {"repo": <abs path or --repo-url>, "ref": "refs/heads/…", "sha": <40 hex>,
               "spec": <spec path in the repo, default release.yaml>}

Parts: event.py (pure: stdin lines, patterns, the event, settings), install.py, emit.py (the
Prefect events client, flushed before exit), spec_at.py (`load_spec_at(repo, sha, path)`),
post-receive (the sh hook), errors.py. Hosted git: infra/ci/github-release.yml instead.
"""
