"""Named errors of the serving process (launcher side); the middleware never raises.

ServingError
├── ServingSettingsError   the settings cannot start a server (no model, no API key, ...)
├── ServerStartError       vLLM exited or did not answer within the startup timeout
└── WarmupError            the server answers but the warmup completion failed

Capture failures are not errors: capture drops the record, counts it and serving goes on.
"""

from __future__ import annotations


class ServingError(Exception):
    """Base of the serving errors; `str(e)` says what is wrong and what to do."""


class ServingSettingsError(ServingError):
    """The settings are inconsistent or point at something that is not there."""


class ServerStartError(ServingError):
    """The vLLM server process exited or did not answer in time."""


class WarmupError(ServingError):
    """The warmup request did not succeed, so the server never reports ready."""
