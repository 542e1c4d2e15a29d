"""The README's promises: its Python quickstart runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

pytestmark = pytest.mark.skipif(not README.is_file(), reason="needs the source checkout")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_quickstart_runs(capsys):
    code = next(b for b in _blocks("python") if "Interactions.from_frame" in b)
    exec(compile(code, "README quickstart", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    picks = re.search(r"Top picks for you: \[(.*)\]", out)
    because = re.search(r"Because you watched (.+?): \[(.*)\]", out)
    assert picks and because
    assert picks.group(1).count("'") == 10 and because.group(2).count("'") == 10
