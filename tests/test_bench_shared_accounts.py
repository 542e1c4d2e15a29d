"""bench/shared_accounts.py on a tiny log: the weaker persona's diagnosis runs and agrees
with the bench's own figures (its fractions are fractions, its slots fit in the list, its
auto ratio is the weaker-persona block's)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tastemaker  # noqa: F401  (imported before the bench puts python/ on the path)

BENCH = Path(__file__).resolve().parent.parent / "bench"
pytestmark = pytest.mark.skipif(not (BENCH / "shared_accounts.py").is_file(),
                                reason="needs the source checkout")


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    saved = list(sys.path)  # the bench's _common puts bench/ and python/ first
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_shared_accounts",
                                                      BENCH / "shared_accounts.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path[:] = saved
    out = tmp_path_factory.mktemp("bench") / "shared.json"
    res = mod.main(["--users", "400", "--items", "200", "--seed", "3", "-k", "10",
                    "--factors", "16", "--balances", "0.3", "--output", str(out)])
    assert json.loads(out.read_text())["weaker_persona_diagnosis"] == res[
        "weaker_persona_diagnosis"]
    return res


def test_weaker_persona_diagnosis_agrees_with_the_bench(result):
    d = result["weaker_persona_diagnosis"]
    w = result["weaker_persona"]
    assert d["accounts"] == w["accounts"] > 0
    assert d["auto/single"] == w["auto_over_single"]
    for key in ("detected_shared", "at_most_one_training_session"):
        assert 0.0 <= d[key] <= 1.0
    undetected = round((1 - d["detected_shared"]) * d["accounts"])
    assert 0 <= d["undetected_with_at_most_one_session"] <= undetected
    det = d["detected"]
    assert 0.0 < det["cluster_recall"] <= 1.0 and 0.0 < det["cluster_purity"] <= 1.0
    assert 0.0 <= det["served_by_account_vector"] <= 1.0
    assert 0.0 < det["weight"] < 1.0
    assert 0.0 <= det["slots"] <= result["args"]["k"]
    # the balance sweep at the default balance is the default's figure
    assert result["auto_by_balance"]["0.3"]["weaker_persona_auto/single"] == pytest.approx(
        w["auto_over_single"])
    assert np.isfinite([d["own_taste_all_slots/single"], d["true_sessions_interleaved/single"],
                        d["true_sessions_interleaved_equal/single"]]).all()
