"""The ``tastemaker`` command line, end to end through subprocess."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tastemaker

PKG_PARENT = str(Path(tastemaker.__file__).resolve().parent.parent)


def run_cli(*args, check=True, timeout=300):
    """Run ``python -m tastemaker ARGS`` with the same tastemaker this test imported."""
    env = dict(os.environ)
    env.pop("TASTEMAKER_DEBUG", None)
    env["PYTHONPATH"] = PKG_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "tastemaker", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\n"
                             f"stderr:\n{proc.stderr}")
    return proc


def assert_user_error(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tastemaker: error: ")
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture(scope="module")
def events_csv(tmp_path_factory):
    """A small event log with string ids: two taste groups, plays and completes."""
    rng = np.random.default_rng(7)
    rows = []
    for u in range(120):
        group = u % 2
        pool = np.arange(0, 20) if group == 0 else np.arange(20, 40)
        for it in rng.choice(pool, size=8, replace=False):
            t = 1_700_000_000 + int(rng.integers(0, 10**6))
            rows.append((f"user-{u}", f"title-{it}", "play", t))
            if rng.random() < 0.5:
                rows.append((f"user-{u}", f"title-{it}", "complete", t + 3600))
    df = pd.DataFrame(rows, columns=["account", "title", "kind", "ts"])
    path = tmp_path_factory.mktemp("cli") / "events.csv"
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model_file(events_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_model") / "model.npz"
    proc = run_cli("fit", events_csv, "--user-col", "account", "--item-col", "title",
                   "--event-col", "kind", "--time-col", "ts",
                   "--event-weights", '{"play": 1, "complete": 3}',
                   "--factors", 4, "--regularization", 2, "--iterations", 10, "--quiet",
                   "-o", out)
    assert "saved ALS (120 users, 40 items, 4 factors)" in proc.stderr
    return out


def test_demo_small():
    proc = run_cli("demo", "--users", 400, "--items", 200, "--factors", 8, "--iterations", 5,
                   "--quiet")
    out = proc.stdout
    assert "synthetic streaming log" in out
    assert "Held-out evaluation at k=10" in out
    assert "ALS" in out and "Popularity" in out and "ndcg@10" in out
    assert "Top picks for you:" in out
    assert "\nBecause you watched " in out
    assert "Recently watched:" in out
    assert "Home page of user" in out and "Trending now:" in out
    # who is watching: a shared account's tastes and one row per taste (or, on a log this
    # small, the note that the account looks like one person)
    assert "Who is watching? Account" in out or "one taste found" in out
    if "Who is watching? Account" in out:
        assert out.count("Top picks for ") >= 3  # "for you" + one per taste
    # ten numbered picks, each a title from the generated catalog, each with a reason
    picks = out.split("Top picks for you:")[1].split("\n\n")[0]
    assert len(re.findall(r"^ +\d+\. \S.*\(-?\d\.\d{3}\)", picks, flags=re.M)) == 10


def test_demo_on_movielens(ml100k_dir):
    proc = run_cli("demo", "--data", ml100k_dir, "--format", "movielens100k", "--factors", 16,
                   "--iterations", 5, "--quiet", "--user", 1)
    assert "User 1:" in proc.stdout
    assert "Toy Story (1995)" in proc.stdout or "Recently watched" in proc.stdout
    # the ALS row beats the Popularity row on ndcg
    lines = proc.stdout.split("Popularity is the baseline):\n")[1].splitlines()
    header = lines[0].split()
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines[2:4]}
    col = header.index("ndcg@10")
    assert float(rows["ALS"][col]) > float(rows["Popularity"][col])


def test_fit_recommend_similar_with_string_ids(model_file, events_csv):
    proc = run_cli("recommend", model_file, "--user", "user-0", "-n", 5, "--json")
    rec = json.loads(proc.stdout)
    assert rec["user"] == "user-0"
    assert len(rec["items"]) == 5
    scores = [r["score"] for r in rec["items"]]
    assert scores == sorted(scores, reverse=True)
    # seen items are filtered, and the taste group is respected: user-0 is in group 0
    seen = set(pd.read_csv(events_csv).query("account == 'user-0'")["title"])
    got = [r["item"] for r in rec["items"]]
    assert not seen & set(got)
    assert all(int(t.split("-")[1]) < 20 for t in got)

    txt = run_cli("recommend", model_file, "--user", "user-0", "-n", 3).stdout
    assert txt.startswith("Top picks for user user-0:") and " 3. title-" in txt

    sim = json.loads(run_cli("similar", model_file, "--item", "title-25", "-n", 4,
                             "--json").stdout)
    assert sim["item"] == "title-25"
    names = [r["item"] for r in sim["similar"]]
    assert len(names) == 4 and "title-25" not in names
    assert all(int(t.split("-")[1]) >= 20 for t in names)


def test_saved_model_matches_python_api(model_file, events_csv):
    model = tastemaker.load(model_file)
    assert model.user_ids.dtype.kind == "U" and model.item_ids.dtype.kind == "U"
    assert model.user_items.shape == (120, 40)
    u = int(np.flatnonzero(model.user_ids == "user-3")[0])
    ids, scores = model.recommend(u, model.user_items[u], N=5)
    rec = json.loads(run_cli("recommend", model_file, "--user", "user-3", "-n", 5,
                             "--json").stdout)
    assert [r["item"] for r in rec["items"]] == model.item_ids[ids].tolist()
    np.testing.assert_allclose([r["score"] for r in rec["items"]], scores, atol=1e-5)


def test_evaluate_command(events_csv):
    proc = run_cli("evaluate", events_csv, "--user-col", "account", "--item-col", "title",
                   "--event-col", "kind", "--time-col", "ts", "--event-weights",
                   '{"play": 1, "complete": 3}', "--factors", 8, "--iterations", 10,
                   "--split", "last", "--test-size", 2, "-k", 5, 10, "--json", "--quiet")
    table = json.loads(proc.stdout)
    assert set(table) == {"ALS", "Popularity"}
    assert {"ndcg@5", "ndcg@10", "precision@10", "recall@10"} <= set(table["ALS"])
    assert table["ALS"]["recall@10"] > table["Popularity"]["recall@10"]
    for split in ("random", "time"):
        proc = run_cli("evaluate", events_csv, "--user-col", "account", "--item-col", "title",
                       "--event-col", "kind", "--time-col", "ts", "--event-weights",
                       '{"play": 1, "complete": 3}', "--factors", 4, "--iterations", 3,
                       "--split", split, "--quiet")
        assert "ndcg@10" in proc.stdout


# ----------------------------------------------------------------------------- user errors
def test_error_missing_file(tmp_path):
    proc = run_cli("fit", tmp_path / "nope.csv", "-o", tmp_path / "m.npz", check=False)
    assert_user_error(proc, "no such file", "nope.csv")
    proc = run_cli("recommend", tmp_path / "nope.npz", "--user", "a", check=False)
    assert_user_error(proc, "MODEL", "no such file")
    proc = run_cli("demo", "--data", tmp_path / "nowhere", "--format", "movielens100k",
                   check=False)
    assert_user_error(proc, "--data", "nowhere")


def test_error_wrong_column(events_csv, tmp_path):
    proc = run_cli("fit", events_csv, "--user-col", "customer", "--item-col", "title",
                   "-o", tmp_path / "m.npz", check=False)
    assert_user_error(proc, "customer", "not in the frame")
    assert not (tmp_path / "m.npz").exists()


def test_error_unknown_event_type(events_csv, tmp_path):
    proc = run_cli("fit", events_csv, "--user-col", "account", "--item-col", "title",
                   "--event-col", "kind", "--event-weights", '{"play": 1}', "-o",
                   tmp_path / "m.npz", check=False)
    assert_user_error(proc, "complete")
    proc = run_cli("fit", events_csv, "--user-col", "account", "--item-col", "title",
                   "--event-weights", "{not json", "-o", tmp_path / "m.npz", check=False)
    assert_user_error(proc, "--event-weights", "JSON")


def test_error_unknown_user_and_item(model_file):
    proc = run_cli("recommend", model_file, "--user", "user-999", check=False)
    assert_user_error(proc, "unknown user", "user-999")
    proc = run_cli("similar", model_file, "--item", "title-x", check=False)
    assert_user_error(proc, "unknown item", "title-x")


def test_error_corrupt_model(tmp_path, model_file):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a model")
    proc = run_cli("recommend", bad, "--user", "user-0", check=False)
    assert_user_error(proc, "bad.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(Path(model_file).read_bytes()[:300])
    proc = run_cli("similar", truncated, "--item", "title-1", check=False)
    assert_user_error(proc, "truncated.npz")


def test_error_bad_arguments(events_csv, tmp_path):
    # argparse's own errors exit 2 with a usage line, no traceback
    proc = run_cli("recommend", "m.npz", check=False)
    assert proc.returncode == 2 and "--user" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("demo", "--users", 0, check=False)
    assert proc.returncode == 2 and "--users" in proc.stderr
    proc = run_cli("demo", "--data", tmp_path, check=False)
    assert_user_error(proc, "--format")
    proc = run_cli(check=False)
    assert proc.returncode == 2 and "COMMAND" in proc.stderr


def test_show_config():
    proc = run_cli("show-config")
    assert tastemaker.__version__ in proc.stdout


def test_console_script_installed():
    """After ``pip install .`` the ``tastemaker`` command is on PATH next to python."""
    import shutil

    exe = shutil.which("tastemaker", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("not pip-installed (source checkout on PYTHONPATH)")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"tastemaker {tastemaker.__version__}"


@pytest.fixture(scope="module")
def bundle_file(events_csv, tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_bundle")
    cat = pd.DataFrame({"title": [f"title-{k}" for k in range(40)],
                        "name": [f"Film number {k}" for k in range(40)],
                        "genres": ["Drama" if k < 20 else "Comedy" for k in range(40)]})
    cat.to_csv(d / "items.csv", index=False)
    out = d / "bundle.tm"
    proc = run_cli("fit", events_csv, "--user-col", "account", "--item-col", "title",
                   "--event-col", "kind", "--time-col", "ts",
                   "--event-weights", '{"play": 1, "complete": 3}',
                   "--factors", 4, "--regularization", 2, "--iterations", 10, "--quiet",
                   "--items", d / "items.csv", "--item-title-col", "name", "-o", out)
    assert "Personalizer bundle with a 40-title catalog" in proc.stderr
    return out


def in_process(*args, check=True):
    """``tastemaker ARGS`` in this process (fast: no interpreter start), like run_cli."""
    import contextlib
    import io
    import types

    from tastemaker import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    proc = types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
    if check and code != 0:
        raise AssertionError(f"exit {code}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def test_bundle_commands_print_titles(bundle_file, events_csv):
    p = tastemaker.load(bundle_file)
    assert isinstance(p, tastemaker.Personalizer)
    txt = in_process("recommend", bundle_file, "--user", "user-0", "-n", 3).stdout
    assert txt.startswith("Top picks for user user-0:") and " 3. Film number " in txt
    rec = json.loads(in_process("recommend", bundle_file, "--user", "user-0", "-n", 4,
                             "--json").stdout)
    assert [r["item"] for r in rec["items"]] == p.top_picks("user-0", 4).items
    assert all(r["title"].startswith("Film number") for r in rec["items"])
    sim = in_process("similar", bundle_file, "--item", "title-25", "-n", 3).stdout
    assert sim.startswith("Similar to Film number 25:")
    page = in_process("homepage", bundle_file, "--user", "user-1", "--row-size", 4).stdout
    assert "Top picks for you:" in page and "Film number" in page
    js = json.loads(in_process("homepage", bundle_file, "--user", "user-1", "--json").stdout)
    items = [i for r in js["rows"] for i in r["items"]]
    assert len(items) == len(set(items))
    top = p.top_picks("user-1", 1).items[0]
    ex = in_process("explain", bundle_file, "--user", "user-1", "--item", top, "-n", 2).stdout
    assert ex.startswith(f"Why {p.title(top)} for user user-1: score")
    assert "because you watched Film number" in ex and "everything else" in ex
    e = json.loads(in_process("explain", bundle_file, "--user", "user-1", "--item", top,
                           "--json").stdout)
    assert abs(sum(c["value"] for c in e["contributions"]) + e["rest"] - e["score"]) < 1e-9


def test_bundle_command_errors(bundle_file, model_file, events_csv, tmp_path):
    assert_user_error(in_process("homepage", model_file, "--user", "user-0", check=False),
                      "needs a Personalizer bundle")
    assert_user_error(in_process("explain", bundle_file, "--user", "nobody", "--item", "title-1",
                              check=False), "--user", "nobody")
    assert_user_error(in_process("explain", bundle_file, "--user", "user-1", "--item", "x",
                              check=False), "--item")
    assert_user_error(in_process("fit", events_csv, "--user-col", "account", "--item-col", "title",
                              "--items", tmp_path / "missing.csv", "-o", tmp_path / "b.tm",
                              check=False), "--items")


# ------------------------------------------------------------------ issue 9 regressions
# in-process (tastemaker.cli.main): fast, and the same code path as the console script
def _main(capsys, *args):
    from tastemaker.cli import main

    code = main([str(a) for a in args])
    return code, capsys.readouterr()


def _headerless(tmp_path, sep, suffix):
    rng = np.random.default_rng(3)
    lines = []
    for u in range(30):
        for it in rng.choice(12, size=5, replace=False):
            lines.append(sep.join([f"0{u}", f"00{it}", str(int(rng.integers(1, 6))),
                                   str(880_000_000 + u * 100 + int(it))]))
    path = tmp_path / f"ratings{suffix}"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fit_headerless_tsv_and_dat_files(tmp_path, capsys):
    tsv = _headerless(tmp_path, "\t", ".tsv")
    out = tmp_path / "m.npz"
    code, cap = _main(capsys, "fit", tsv, "--sep", "\\t", "--no-header",
                      "--names", "user,item,rating,ts", "--value-col", "rating",
                      "--time-col", "ts", "--factors", 2, "--iterations", 1, "--quiet",
                      "-o", out)
    assert code == 0, cap.err
    model = tastemaker.load(out)
    # ids from a text file stay strings: "007" is not 7
    assert model.user_ids.dtype.kind == "U" and "00" in model.user_ids.tolist()
    assert set(model.item_ids.tolist()) == {f"00{i}" for i in range(12)}
    assert model.user_items.nnz == 150
    dat = _headerless(tmp_path, "::", ".dat")
    code, cap = _main(capsys, "fit", dat, "--names", "user,item,rating,ts", "--value-col",
                      "rating", "--factors", 2, "--iterations", 1, "--quiet", "-o", out)
    assert code == 0, cap.err
    np.testing.assert_array_equal(tastemaker.load(out).user_items.toarray(),
                                  model.user_items.toarray())
    # without --no-header the first event would be the header: a clear error, not data
    code, cap = _main(capsys, "fit", tsv, "--sep", "\\t", "--value-col", "rating",
                      "--quiet", "-o", out)
    assert code == 2 and "--user-col: column 'user' not in the frame" in cap.err


def test_fit_checks_the_output_before_reading_or_training(tmp_path, capsys):
    missing_events = tmp_path / "nothing.csv"  # never read: the output is checked first
    for target in ("/dev/full", "/dev/null", tmp_path):
        code, cap = _main(capsys, "fit", missing_events, "-o", target)
        assert code == 2 and "--output:" in cap.err, cap.err
        assert "not a regular file" in cap.err or "is a directory" in cap.err, cap.err
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    code, cap = _main(capsys, "fit", missing_events, "-o", tmp_path / "no" / "m.npz")
    assert code == 2 and "--output: directory" in cap.err
    code, cap = _main(capsys, "fit", missing_events, "--alpha", -1, "-o", tmp_path / "m.npz")
    assert code == 2 and "alpha" in cap.err


def test_fit_through_a_symlinked_output_writes_its_target(tmp_path, capsys, events_csv):
    real = tmp_path / "real.npz"
    real.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(real)
    code, cap = _main(capsys, "fit", events_csv, "--user-col", "account", "--item-col", "title",
                      "--factors", 2, "--iterations", 1, "--quiet", "-o", link)
    assert code == 0, cap.err
    assert link.is_symlink() and tastemaker.load(real).item_factors.shape == (40, 2)


def test_demo_rejects_an_unknown_user_before_training(capsys):
    code, cap = _main(capsys, "demo", "--users", 200, "--items", 80, "--user", "nobody",
                      "--quiet")
    assert code == 2 and "--user: unknown user 'nobody'" in cap.err
    assert "Training ALS" not in cap.out
