"""Named errors of the git hook and of reading a spec at a pushed commit.

CanaryflowError
├── SpecError                        (infra/errors.py) a release spec is invalid
│   ├── RepoNotFoundError            the repo path is not a git repository
│   ├── CommitNotFoundError          the sha is not a commit in that repository
│   ├── SpecFileMissingError         the spec file does not exist at that commit
│   ├── SpecParseError               the file is not valid YAML/JSON, or not a mapping
│   └── SpecInvalidError             ReleaseSpec rejected it (pydantic's field errors quoted)
└── GitHookError                     the hook could not be installed, or an event not sent
    ├── NotAGitRepoError             install/uninstall was pointed at something not a git repo
    ├── ForeignHookError             another post-receive hook exists (use --force: it is kept)
    ├── HookConfigError              a setting is missing or wrong (no API URL, bad timeout)
    └── EmitError                    the Prefect API did not take the event (unreachable, slow)
"""

from __future__ import annotations

from infra.errors import CanaryflowError, SpecError


class RepoNotFoundError(SpecError):
    """The path given as the repository is not a git repository (or does not exist)."""


class CommitNotFoundError(SpecError):
    """The sha does not name a commit in the repository (not pushed, or garbage-collected)."""


class SpecFileMissingError(SpecError):
    """The spec file does not exist at that commit."""


class SpecParseError(SpecError):
    """The spec file is not valid YAML or JSON, or its top level is not a mapping."""


class SpecInvalidError(SpecError):
    """The file parses but ReleaseSpec rejects it; the message lists each field error."""


class GitHookError(CanaryflowError):
    """The git hook could not be installed or uninstalled, or an event could not be sent."""


class NotAGitRepoError(GitHookError):
    """install/uninstall was given a path that is not a git repository."""


class ForeignHookError(GitHookError):
    """A post-receive hook that canaryflow did not write is in the way."""


class HookConfigError(GitHookError):
    """A hook setting is missing or malformed (no API URL, bad timeout, bad pattern)."""


class EmitError(GitHookError):
    """The Prefect API did not accept the event in time (unreachable, refused, too slow)."""
