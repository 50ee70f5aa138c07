"""The embedded services' environment (infra/services.py), without starting them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_prefect_ui_calls_the_api_on_the_port_the_server_listens_on(tmp_path: Path) -> None:
    """On a port other than 4200 the UI called 127.0.0.1:4200 (PREFECT_UI_API_URL follows
    PREFECT_SERVER_API_PORT, not `--port`) and showed nothing but "Can't connect"."""
    code = (
        "from infra import services; from infra.settings import Settings\n"
        "server = services.services(Settings())[0]\n"
        "print(server.argv[server.argv.index('--port') + 1], server.env['PREFECT_UI_API_URL'])"
    )
    env = {"CANARYFLOW_PREFECT_PORT": "4321", "CANARYFLOW_STATE": str(tmp_path),
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert done.stdout.split() == ["4321", "http://127.0.0.1:4321/api"]
