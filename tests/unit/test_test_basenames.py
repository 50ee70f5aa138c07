"""Every test module has a basename of its own: pytest imports them by basename (rootdir
conftest, no packages), so a second tests/*/test_x.py stops the whole run at collection
("import file mismatch") — it happened twice, each time found only by a full `make test`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_basename() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert len(names) > 50
    assert [n for n, count in names.items() if count > 1] == []
