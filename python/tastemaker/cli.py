"""The ``tastemaker`` command line.

Commands::

    tastemaker demo        train and evaluate on the synthetic streaming log (or a data set)
    tastemaker fit         event log (CSV / Parquet) -> model file with its id maps
    tastemaker recommend   top picks for a user of a model file (external ids)
    tastemaker similar     titles like a given title (external ids)
    tastemaker evaluate    split an event log, train, score against Popularity
    tastemaker show-config version, SIMD path, threads

User errors (a missing file, a wrong column, an unknown id, a corrupt model file) print
one line ``tastemaker: error: ...`` on stderr and exit with status 2; set
``TASTEMAKER_DEBUG=1`` to get the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

EXIT_USER_ERROR = 2

# --data formats of `demo` -> loader in tastemaker.datasets and its default options
_FORMATS = {
    "movielens100k": ("movielens_100k", {}),
    "movielens1m": ("movielens_1m", {}),
    "movielens-csv": ("movielens_latest", {}),
    "lastfm2k": ("lastfm_2k", {"transform": "bm25"}),
}
_SPLITS = ("random", "last", "time")
# demo defaults: the synthetic log has 16 taste dimensions, and held-out NDCG@10 peaks near
# 16 factors with strong regularization (measured: 0.106 vs Popularity's 0.066 at 16 / 100
# on the log with viewing habits, 2026-11-30; before them 0.103 vs 0.067, and 0.069 at
# 32 / 0.05); real data sets get the library defaults' usual 32 / 0.05
_DEMO_SYNTHETIC = {"factors": 16, "regularization": 100.0}
_DEMO_DATASET = {"factors": 32, "regularization": 0.05}
_DEMO_HELP = {k: f"{_DEMO_SYNTHETIC[k]:g} on the synthetic log, {_DEMO_DATASET[k]:g} on --data"
              for k in _DEMO_SYNTHETIC}


class UserError(Exception):
    """A problem with what the user asked for; printed as one line, no traceback."""


# --------------------------------------------------------------------------- arguments
def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {v}")
        return v

    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


def _float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def _regularization(text: str):
    return "auto" if text == "auto" else _float(text)


def _add_model_options(p: argparse.ArgumentParser, factors=64, iterations: int = 15,
                       regularization="auto") -> None:
    g = p.add_argument_group("model (implicit ALS)")
    g.add_argument("--factors", type=_positive_int, default=factors,
                   help=f"default {factors or _DEMO_HELP['factors']}")
    g.add_argument("--iterations", type=_nonneg_int, default=iterations,
                   help=f"default {iterations}")
    g.add_argument("--regularization", type=_regularization, default=regularization,
                   help=f"default {regularization or _DEMO_HELP['regularization']}")
    g.add_argument("--alpha", type=_float, default=1.0, help="confidence scale, default 1")
    g.add_argument("--solver", choices=("cg", "cholesky"), default="cg")
    g.add_argument("--cg-steps", type=_positive_int, default=3)
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--threads", type=_nonneg_int, default=0, help="0 = all cores")
    g.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_event_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("events", metavar="EVENTS",
                   help="event log: .csv, .tsv, .dat (MovieLens '::') or .parquet")
    g = p.add_argument_group("event log columns and weighting")
    g.add_argument("--sep", metavar="SEP",
                   help="field separator of a text file (default ',' for .csv, tab for .tsv, "
                   "'::' for .dat); escapes such as '\\t' are understood")
    g.add_argument("--no-header", action="store_true",
                   help="the text file has no header line (name the columns with --names; "
                   "the default for .dat)")
    g.add_argument("--names", metavar="A,B,...",
                   help="comma-separated column names, e.g. user,item,rating,ts (replaces "
                   "the header's names, or names a headerless file)")
    g.add_argument("--user-col", default="user", help="column of user ids (default 'user')")
    g.add_argument("--item-col", default="item", help="column of item ids (default 'item')")
    g.add_argument("--value-col", help="numeric column: counts, watch fraction, stars")
    g.add_argument("--event-col", help="column of event types (play, complete, ...)")
    g.add_argument("--time-col", help="column of timestamps (epoch seconds or dates)")
    g.add_argument("--event-weights", metavar="JSON",
                   help='weights per event type, e.g. \'{"play": 1, "complete": 3}\'')
    g.add_argument("--half-life", help="recency decay half-life: seconds or '30D'")
    g.add_argument("--transform", choices=("binary", "linear", "log1p", "bm25", "tfidf"),
                   help="confidence transform of the aggregated values")
    g.add_argument("--min-user-count", type=_positive_int, default=1)
    g.add_argument("--min-item-count", type=_positive_int, default=1)


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="tastemaker", description="tastemaker: top picks and 'because you watched' "
        "from event logs, on SIMD + OpenMP kernels.",
        epilog="Run 'tastemaker COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"tastemaker {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="train, evaluate and show picks on the demo data",
                       description="Generate the synthetic streaming log (or load a data "
                       "set), train ALS, evaluate it against Popularity and show one "
                       "user's top picks and a 'Because you watched' row.")
    p.add_argument("--users", type=_positive_int, default=20000,
                   help="synthetic accounts (default 20000)")
    p.add_argument("--items", type=_positive_int, default=3000,
                   help="synthetic titles (default 3000)")
    p.add_argument("--data", metavar="PATH", help="a data set directory instead")
    p.add_argument("--format", choices=sorted(_FORMATS), help="format of --data")
    p.add_argument("--user", metavar="ID", help="the user to show (default: picked)")
    p.add_argument("-n", type=_positive_int, default=10, help="rows shown (default 10)")
    p.add_argument("-k", type=_positive_int, default=10, help="metric cut-off (default 10)")
    _add_model_options(p, factors=None, iterations=15, regularization=None)

    p = sub.add_parser("fit", help="train ALS on an event log and save the model",
                       description="Read an event log (CSV or Parquet), build the weighted "
                       "user x item matrix, train ALS and save one model file holding the "
                       "factors, the external id maps and each user's seen items.")
    _add_event_options(p)
    _add_model_options(p)
    p.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file (.npz)")
    g = p.add_argument_group("catalog (saves a Personalizer bundle: titles, home pages, "
                             "explanations)")
    g.add_argument("--items", metavar="PATH", help="catalog table (.csv, .tsv or .parquet), one "
                   "row per title")
    g.add_argument("--item-id-col", metavar="C",
                   help="catalog column of item ids (default: the --item-col name)")
    g.add_argument("--item-title-col", default="title", metavar="C",
                   help="catalog column of display titles (default 'title')")

    p = sub.add_parser("recommend", help="top picks for a user of a model file")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--user", required=True, metavar="ID", help="external user id")
    p.add_argument("-n", type=_positive_int, default=10)
    p.add_argument("--include-seen", action="store_true",
                   help="do not filter out what the user has already seen")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("similar", help="items similar to an item of a model file")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--item", required=True, metavar="ID", help="external item id")
    p.add_argument("-n", type=_positive_int, default=10)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("evaluate", help="split an event log, train and compare with Popularity",
                       description="Split the events (random per-user holdout, each user's "
                       "last items, or a global time split), train ALS on the training "
                       "part and print ranking metrics for ALS and the Popularity baseline.")
    _add_event_options(p)
    _add_model_options(p)
    p.add_argument("--split", choices=_SPLITS, default="random",
                   help="random: per-user holdout; last: each user's latest items; "
                   "time: global cut (default random)")
    p.add_argument("--test-size", type=_float, default=0.2,
                   help="share of each user's items (random), items per user (last) or "
                   "share of the latest events (time); default 0.2, 'last' uses 1 if < 1")
    p.add_argument("-k", type=_positive_int, nargs="+", default=[10], help="cut-offs")
    p.add_argument("--json", action="store_true", help="print the table as JSON")

    p = sub.add_parser("homepage", help="a user's home page from a Personalizer bundle",
                       description="Print a user's home page (top picks, because you watched, "
                       "genre rows, trending, new releases, continue watching) with reasons, "
                       "from a bundle saved by 'tastemaker fit --items'.")
    p.add_argument("model", metavar="BUNDLE")
    p.add_argument("--user", required=True, metavar="ID", help="external user id")
    p.add_argument("--row-size", type=_positive_int, default=10)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("explain", help="why a title scores what it does for a user",
                       description="The user's history titles that contribute most to the "
                       "title's score (exact for ALS), from a Personalizer bundle.")
    p.add_argument("model", metavar="BUNDLE")
    p.add_argument("--user", required=True, metavar="ID", help="external user id")
    p.add_argument("--item", required=True, metavar="ID", help="external item id")
    p.add_argument("-n", type=_positive_int, default=5)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("serve", help="serve a Personalizer bundle over HTTP (extra [serve])",
                       description="HTTP API and web page over a Personalizer bundle "
                       "(FastAPI + uvicorn): top picks, home pages, explanations, live "
                       "events. Binds to loopback unless --host says otherwise.")
    p.add_argument("bundle", metavar="BUNDLE", help="a Personalizer bundle (tastemaker fit "
                   "--items ...)")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    p.add_argument("--port", type=_int_at_least(0), default=8000, help="default 8000")
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="uvicorn worker processes (each holds its own copy; default 1)")
    p.add_argument("--api-key-file", help="file holding the key that POST /events and "
                   "POST /admin/reload require (header X-API-Key)")
    p.add_argument("--event-log", help="append recorded events here (fsync'd) and replay "
                   "them on start, so they survive a restart")
    p.add_argument("--max-inflight", type=_positive_int, default=64,
                   help="requests in flight per worker before answering 503 (default 64)")
    p.add_argument("--no-watch", action="store_true",
                   help="do not reload the bundle when the file changes")
    sub.add_parser("show-config", help="print version, SIMD path and threads")
    return parser


# --------------------------------------------------------------------------- helpers
def _check_file(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise UserError(f"{what}: no such file {path!r}")
    if os.path.isdir(path):
        raise UserError(f"{what}: {path!r} is a directory, expected a file")


def _read_events(args):
    from .data import Interactions

    _check_file(args.events, "EVENTS")
    weights = None
    if args.event_weights is not None:
        try:
            weights = json.loads(args.event_weights)
        except json.JSONDecodeError as exc:
            raise UserError(f"--event-weights: not valid JSON ({exc})") from None
        if not isinstance(weights, dict):
            raise UserError("--event-weights: expected a JSON object such as "
                            '{"play": 1, "complete": 3}')
    half_life = args.half_life
    if half_life is not None:
        try:
            half_life = float(half_life)
        except ValueError:
            pass  # "30D": Interactions parses durations
    text = {}
    if args.sep is not None:
        try:
            sep = args.sep.encode("utf-8").decode("unicode_escape")
        except UnicodeDecodeError:
            raise UserError(f"--sep: cannot read {args.sep!r}") from None
        if not sep:
            raise UserError("--sep: expected a separator, got ''")
        text["delimiter"] = sep
    if args.no_header:
        text["header"] = False
    if args.names is not None:
        names = [n.strip() for n in args.names.split(",")]
        if not all(names):
            raise UserError(f"--names: expected comma-separated column names, got "
                            f"{args.names!r}")
        text["names"] = names
    try:
        return Interactions.from_path(
            args.events, user=args.user_col, item=args.item_col, value=args.value_col,
            event=args.event_col, timestamp=args.time_col, event_weights=weights,
            half_life=half_life, transform=args.transform,
            min_user_count=args.min_user_count, min_item_count=args.min_item_count, **text)
    except ValueError as exc:
        raise UserError(_cli_names(str(exc))) from None


# the library's argument names -> the command line's
_CLI_NAMES = {"path": "EVENTS", "user": "--user-col", "item": "--item-col",
              "value": "--value-col", "event": "--event-col", "timestamp": "--time-col",
              "event_weights": "--event-weights", "half_life": "--half-life",
              "transform": "--transform", "delimiter": "--sep", "names": "--names",
              "header": "--no-header", "min_user_count": "--min-user-count",
              "min_item_count": "--min-item-count"}


def _cli_names(msg: str, names: dict | None = None) -> str:
    head, sep, rest = msg.partition(":")
    return (names or _CLI_NAMES).get(head, head) + sep + rest if sep else msg


def _check_output(path: str) -> None:
    """--output must be writable, checked before any reading or training."""
    from .io import check_output_path

    try:
        check_output_path(path)
    except ValueError as exc:
        raise UserError(_cli_names(str(exc), {"path": "--output"})) from None


def _make_als(args):
    from .models import ALS

    return ALS(factors=args.factors, regularization=args.regularization, alpha=args.alpha,
               iterations=args.iterations, solver=args.solver, cg_steps=args.cg_steps,
               random_state=args.seed, num_threads=args.threads)


def _find(ids: np.ndarray, text: str, what: str) -> int:
    """External id given on the command line -> dense index of the model's id map."""
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        try:
            key = int(text)
        except ValueError:
            raise UserError(f"--{what}: unknown {what} {text!r} (ids are integers)") from None
        hits = np.flatnonzero(ids == key)
    else:
        hits = np.flatnonzero(ids.astype(str) == text)
    if hits.size == 0:
        raise UserError(f"--{what}: unknown {what} {text!r} (the model knows {ids.size} "
                        f"{what}s)")
    return int(hits[0])


def _load_model(path: str):
    from .io import load

    _check_file(path, "MODEL")
    model = load(path)
    if not hasattr(model, "recommend"):
        raise UserError(f"MODEL: {path!r} is a Personalizer bundle; this option needs a bare "
                        "model file")
    for name in ("user_ids", "item_ids"):
        if getattr(model, name, None) is None:
            raise UserError(f"MODEL: {path!r} has no id maps; save models with "
                            "'tastemaker fit' or set model.user_ids / model.item_ids")
    return model


def _external(ids: np.ndarray, index: int):
    v = np.asarray(ids)[index]
    return v.item() if isinstance(v, np.generic) else v


def _print_list(header: str, ids, scores, label) -> None:
    print(header)
    if len(ids) == 0:
        print("  (nothing to recommend)")
    for rank, (i, s) in enumerate(zip(ids, scores), 1):
        print(f"  {rank:>2}. {label(int(i))}  ({s:.3f})")


# --------------------------------------------------------------------------- commands
def _cmd_fit(args) -> int:
    t0 = time.perf_counter()
    _check_output(args.output)
    _make_als(args)._checked_params()  # bad hyperparameters fail before the data is read
    catalog = None if args.items is None else _read_catalog(args)
    data = _read_events(args)
    print(f"read {data!r} from {args.events}", file=sys.stderr)
    model = _make_als(args)
    user_items = data.to_csr()
    model.fit(user_items, show_progress=not args.quiet)
    model.user_ids = data.user_ids
    model.item_ids = data.item_ids
    model.user_items = user_items
    what = "ALS"
    if catalog is None:
        model.save(args.output)
    else:
        from .pages import Personalizer

        Personalizer(model, data, catalog=catalog, title_col=args.item_title_col).save(args.output)
        what = f"a Personalizer bundle with a {len(catalog)}-title catalog and ALS"
    print(f"saved {what} ({data.n_users} users, {data.n_items} items, {model.factors} factors) "
          f"to {args.output} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return 0


def _read_catalog(args):
    """The --items table, indexed by the item id column."""
    import pandas as pd
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    _check_file(args.items, "--items")
    path = args.items.lower()
    try:
        if path.endswith((".parquet", ".pq")):
            frame = pq.read_table(args.items).to_pandas()
        else:
            delim = "\t" if path.endswith(".tsv") else ","
            frame = pacsv.read_csv(args.items, parse_options=pacsv.ParseOptions(
                delimiter=delim)).to_pandas()
    except (OSError, ValueError) as exc:
        raise UserError(f"--items: cannot read {args.items!r} ({exc})") from None
    col = args.item_id_col or args.item_col
    if col not in frame.columns:
        raise UserError(f"--item-id-col: column {col!r} not in {args.items!r} (columns: "
                        f"{list(frame.columns)})")
    if args.item_title_col not in frame.columns:
        raise UserError(f"--item-title-col: column {args.item_title_col!r} not in "
                        f"{args.items!r} (columns: {list(frame.columns)})")
    return frame.set_index(col).rename_axis("item")


def _print_result(model, key: str, query, list_key: str, title: str, ids, scores,
                  as_json: bool) -> None:
    """A query's result in external ids: JSON ``{key: id, list_key: [...]}`` or a list."""
    if as_json:
        print(json.dumps({key: query, list_key: [
            {"item": _external(model.item_ids, int(i)), "score": round(float(s), 6)}
            for i, s in zip(ids, scores)]}))
    else:
        _print_list(title, ids, scores, lambda i: str(_external(model.item_ids, i)))


def _load_bundle(path: str, command: str):
    from .io import load
    from .pages import Personalizer

    _check_file(path, "BUNDLE" if command in ("homepage", "explain") else "MODEL")
    obj = load(path)
    if not isinstance(obj, Personalizer):
        raise UserError(f"MODEL: {path!r} is a bare model; '{command}' needs a Personalizer "
                        "bundle (run 'tastemaker fit' with --items CATALOG)")
    return obj


def _is_bundle(path: str) -> bool:
    from ._mapped import is_mapped

    return is_mapped(path)


def _print_row(row, label, numbered: bool = True) -> None:
    """A Row as a titled, numbered list: label, score and reason per line."""
    print(f"{row.title}:")
    if not row.items:
        print("  (nothing to show)")
    for rank, (i, s, why) in enumerate(zip(row.items, row.scores, row.reasons), 1):
        tail = f"  - {why}" if why else ""
        head = f"  {rank:>2}. " if numbered else "    - "
        print(f"{head}{label(i)}  ({s:.3f}){tail}")


def _bundle_user(p, text: str):
    """A command-line user id -> the bundle's id (ints stay ints)."""
    for key in (text, _int_or_none(text)):
        if key is not None and p.has_user(key):
            return key
    raise UserError(f"--user: unknown user {text!r} (the bundle knows {p.n_users} users)")


def _bundle_item(p, text: str):
    for key in (text, _int_or_none(text)):
        if key is None:
            continue
        try:
            p.title(key)
        except ValueError:
            continue
        return key
    raise UserError(f"--item: unknown item {text!r} (the bundle knows {p.n_items} items)")


def _int_or_none(text: str):
    try:
        return int(text)
    except ValueError:
        return None


def _cmd_homepage(args) -> int:
    p = _load_bundle(args.model, "homepage")
    user = _bundle_user(p, args.user)
    page = p.homepage(user, row_size=args.row_size)
    if args.json:
        print(json.dumps(p.page_dict(page)))
        return 0
    print(f"Home page of user {args.user}:")
    for row in page.rows:
        print()
        _print_row(row, p.title)
    return 0


def _cmd_explain(args) -> int:
    p = _load_bundle(args.model, "explain")
    user, item = _bundle_user(p, args.user), _bundle_item(p, args.item)
    e = p.explain(user, item, n=args.n)
    if args.json:
        d = e.to_dict()
        d["title"] = p.title(item)
        d["contributions"] = [{"item": i, "title": p.title(i), "value": v}
                              for i, v in d["contributions"]]
        print(json.dumps(d))
        return 0
    print(f"Why {p.title(item)} for user {args.user}: score {e.score:.4f}")
    for i, v in e.contributions:
        print(f"  {v:+.4f}  because you watched {p.title(i)}")
    print(f"  {e.rest:+.4f}  everything else")
    return 0


def _cmd_recommend(args) -> int:
    if _is_bundle(args.model) and not args.include_seen:
        p = _load_bundle(args.model, "recommend")
        row = p.top_picks(_bundle_user(p, args.user), n=args.n)
        if args.json:
            print(json.dumps({"user": _bundle_user(p, args.user), "items": [
                {"item": i, "title": p.title(i), "score": round(float(s), 6), "reason": why}
                for i, s, why in zip(row.to_dict()["items"], row.scores, row.reasons)]}))
        else:
            _print_row(_retitled(row, f"Top picks for user {args.user}"), p.title)
        return 0
    model = _load_model(args.model)
    u = _find(model.user_ids, args.user, "user")
    seen = getattr(model, "user_items", None)
    filt = not args.include_seen and seen is not None
    ids, scores = model.recommend(u, seen[u] if filt else None, N=args.n,
                                  filter_already_liked_items=filt)
    _print_result(model, "user", _external(model.user_ids, u), "items",
                  f"Top picks for user {args.user}:", ids, scores, args.json)
    return 0


def _retitled(row, title: str):
    from dataclasses import replace

    return replace(row, title=title)


def _cmd_similar(args) -> int:
    if _is_bundle(args.model):
        p = _load_bundle(args.model, "similar")
        item = _bundle_item(p, args.item)
        row = p.similar(item, n=args.n)
        if args.json:
            print(json.dumps({"item": item, "title": p.title(item), "similar": [
                {"item": i, "title": p.title(i), "score": round(float(s), 6)}
                for i, s in zip(row.to_dict()["items"], row.scores)]}))
        else:
            _print_row(_retitled(row, f"Similar to {p.title(item)}"), p.title)
        return 0
    model = _load_model(args.model)
    i = _find(model.item_ids, args.item, "item")
    ids, scores = model.similar_items(i, N=args.n, filter_items=[i])
    _print_result(model, "item", _external(model.item_ids, i), "similar",
                  f"Similar to {args.item}:", ids, scores, args.json)
    return 0


def _split(data, how: str, size: float, seed: int):
    from .evaluation import leave_last_k_out_split, random_split, temporal_split

    if how == "random":
        if not 0 < size < 1:
            raise UserError(f"--test-size: expected a fraction in (0, 1) for --split random, "
                            f"got {size}")
        return random_split(data, test_size=size, random_state=seed)
    if data.timestamps is None:
        raise UserError(f"--split {how}: needs timestamps; give --time-col")
    if how == "last":
        return leave_last_k_out_split(data, k=max(1, int(round(size))))
    if not 0 < size < 1:
        raise UserError(f"--test-size: expected a fraction in (0, 1) for --split time, got {size}")
    return temporal_split(data, test_fraction=size)


def _print_table(table, as_json: bool) -> None:
    import pandas as pd

    if as_json:
        print(json.dumps({str(m): {c: (None if pd.isna(v) else float(v))
                                   for c, v in row.items()}
                          for m, row in table.iterrows()}))
        return
    with pd.option_context("display.width", 200, "display.max_columns", 50,
                           "display.float_format", "{:.4f}".format):
        print(table.to_string())


def _cmd_evaluate(args) -> int:
    from .evaluation import evaluate

    data = _read_events(args)
    print(f"read {data!r} from {args.events}", file=sys.stderr)
    train, test = _split(data, args.split, args.test_size, args.seed)
    if test.nnz == 0:
        raise UserError("--split: the test set is empty (too little history per user?)")
    model = _make_als(args).fit(train.to_csr(), show_progress=not args.quiet)
    table = evaluate({"ALS": model}, train, test, k=tuple(args.k),
                     show_progress=not args.quiet)
    _print_table(table, args.json)
    return 0


# --------------------------------------------------------------------------- demo
def _demo_data(args):
    """-> (Interactions, titles and display labels by item index, description, per-user
    notes or None, catalog DataFrame indexed by item id, event log or None)."""
    from . import datasets

    if args.data is None:
        if args.format is not None:
            raise UserError("--format: only with --data")
        t0 = time.perf_counter()
        synth = datasets.synthetic_streaming(n_users=args.users, n_items=args.items,
                                             seed=args.seed)
        # sessions with their device and hour: the product layer tells the people of a
        # shared account apart with them (pages/tastes.py)
        data = synth.interactions(session="session", context=("device", "hour"))
        items = synth.items.loc[data.item_ids]
        titles = items["title"].tolist()
        labels = [f"{t}  [{g.replace('|', ', ')}]" for t, g in zip(titles, items["genres"])]
        users = synth.users.loc[data.user_ids]
        notes = [("shared account: " if s else "taste: ") + t.replace("|", " + ")
                 for s, t in zip(users["shared"], users["taste"])]
        desc = (f"synthetic streaming log: {len(synth.events):,} events "
                f"({', '.join(f'{k} {v:,}' for k, v in synth.events['event'].value_counts().items())})"
                f" in {time.perf_counter() - t0:.1f}s")
        return data, titles, labels, desc, notes, synth.items, synth.events
    if args.format is None:
        raise UserError(f"--format: required with --data (one of {', '.join(sorted(_FORMATS))})")
    if not os.path.isdir(args.data):
        raise UserError(f"--data: no such directory {args.data!r}")
    name, opts = _FORMATS[args.format]
    data, items = getattr(datasets, name)(args.data, **opts)
    # every loader's item table has a title column; an item missing from it shows its id
    titles = [t if isinstance(t, str) else str(i)
              for i, t in zip(data.item_ids, items["title"].reindex(data.item_ids))]
    return data, titles, titles, f"{args.format} from {args.data}: {data!r}", None, items, None


def _demo_catalog(catalog, train):
    """The loader's item table as a catalog: one row per id (the first), ids of the
    training data's kind."""
    if catalog is None:
        return None
    cat = catalog[~catalog.index.duplicated(keep="first")]
    if train.item_ids.dtype.kind == "U" and cat.index.dtype.kind != "U":
        cat = cat.set_axis(cat.index.astype(str))
    return cat


def _pick_user(data, test, requested, prefer=None):
    if requested is not None:
        return _find(data.user_ids, requested, "user")
    # a user with a fair amount of history and something held out, chosen reproducibly,
    # among the preferred ones (shared accounts of the synthetic log) when there are any
    n_seen = np.bincount(data.user_idx, minlength=data.n_users)
    n_test = np.bincount(test.user_idx, minlength=data.n_users)
    good = (n_test > 0) & (n_seen >= 15)
    if prefer is not None and np.any(good & prefer):
        good &= prefer
    ok = np.flatnonzero(good)
    if ok.size == 0:
        ok = np.flatnonzero(n_seen > 0)
    return int(ok[len(ok) // 3])


def _cmd_demo(args) -> int:
    from . import set_num_threads, simd_path
    from .evaluation import evaluate, leave_last_k_out_split, random_split

    if args.threads:
        set_num_threads(args.threads)
    t_start = time.perf_counter()
    for key, value in (_DEMO_SYNTHETIC if args.data is None else _DEMO_DATASET).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    data, titles, labels, desc, notes, catalog, events = _demo_data(args)
    print(f"tastemaker demo: {desc}")
    print(f"  {data.n_users:,} users x {data.n_items:,} items, {data.nnz:,} user-item "
          f"entries; SIMD path {simd_path()}")

    if data.timestamps is not None:
        train, test = leave_last_k_out_split(data, k=2, min_train=5)
        how = "each user's 2 latest titles held out"
    else:
        train, test = random_split(data, test_size=0.2, random_state=args.seed)
        how = "20% of each user's items held out at random"
    # the user to show is resolved before training: an unknown --user fails at once
    shared = (None if notes is None else
              np.array([n.startswith("shared") for n in notes], dtype=bool))
    u = _pick_user(data, test, args.user, shared)
    print(f"\nTraining ALS ({args.factors} factors, {args.iterations} iterations) on "
          f"{train.nnz:,} entries; {how} ({test.nnz:,}).")
    model = _make_als(args)
    t0 = time.perf_counter()
    model.fit(train.to_csr(), show_progress=not args.quiet)
    fit_s = time.perf_counter() - t0
    print(f"  trained in {fit_s:.2f}s")
    table = evaluate({"ALS": model}, train, test, k=(args.k,), show_progress=not args.quiet,
                     metrics=("precision", "recall", "ndcg", "map", "hit_rate", "coverage",
                              "novelty"))
    print(f"\nHeld-out evaluation at k={args.k} (Popularity is the baseline):")
    _print_table(table, False)

    # the showcase: one user's history, top picks and a "because you watched" row
    row = data.to_csr()[u]
    seen = row.indices
    print(f"\nUser {_external(data.user_ids, u)}"
          + (f" ({notes[u]})" if notes is not None else "")
          + f": {len(seen)} titles in the history")
    entries = np.flatnonzero(data.user_idx == u)
    if data.timestamps is not None:
        order = entries[np.argsort(-data.timestamps[entries], kind="stable")]
        print("  Recently watched:")
    else:
        order = entries[np.argsort(-data.values[entries], kind="stable")]
        print("  Most played:")
    for e in order[: min(5, len(order))]:
        v = float(data.values[e])
        mark = "  (disliked)" if v < 0 else ""
        print(f"    - {labels[int(data.item_idx[e])]}{mark}")

    # the whole home page, from the product layer over the model just trained
    from .pages import Personalizer

    p = Personalizer(model, train, catalog=_demo_catalog(catalog, train), events=events,
                     progress_col="watch_fraction" if events is not None else None)
    label_of = dict(zip(data.item_ids.tolist(), labels))
    user = _external(data.user_ids, u)
    # one row of top picks here (interleaving the people of a shared account); the rows
    # per person follow below
    page = p.homepage(user, row_size=args.n, tastes="interleave")
    print(f"\nHome page of user {user} ({len(page.rows)} rows, each title once):")
    for r in page.rows:
        print()
        _print_row(r, lambda i: label_of.get(i, str(i)))
    if p.sessions is not None:
        _demo_shared_account(p, data, test, args, shared, u, notes, label_of)
    print(f"\nDone in {time.perf_counter() - t_start:.1f}s.")
    return 0


def _demo_shared_account(p, data, test, args, shared, u, notes, label_of) -> None:
    """Who is watching: a shared account's tastes and its top-picks row per taste."""
    user = _external(data.user_ids, u)
    tastes = p.tastes(user)
    if len(tastes) < 2 and args.user is None and shared is not None:
        # the account shown above looked like one person: show one that does not
        n_seen = np.bincount(data.user_idx, minlength=data.n_users)
        for c in np.flatnonzero(shared & (n_seen >= 15))[:60]:
            cand = _external(data.user_ids, int(c))
            if len(p.tastes(cand)) > 1:
                u, user, tastes = int(c), cand, p.tastes(cand)
                break
    if len(tastes) < 2:
        print(f"\nUser {user}: one taste found (no sign of a shared account).")
        return
    note = f" ({notes[u]})" if notes is not None else ""
    print(f"\nWho is watching? Account {user}{note} holds {len(tastes)} tastes:")
    for t in tastes:
        ctx = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in t.context.items())
        print(f"  - {t.weight:.0%} of the sessions ({ctx}): {len(t.items)} titles")
    page = p.homepage(user, rows=["top_picks"], row_size=args.n, tastes="rows")
    print("\nTop picks, one row per taste (homepage(..., tastes='rows')):")
    for r in page.rows:
        print()
        _print_row(r, lambda i: label_of.get(i, str(i)))


# --------------------------------------------------------------------------- entry point
def _cmd_serve(args) -> int:
    try:
        import uvicorn

        from .serve.app import app_from_env  # noqa: F401  (fails early without fastapi)
    except ImportError:
        raise UserError("serve needs the [serve] extra: pip install 'tastemaker[serve]'") from None
    _load_bundle(args.bundle, "serve")  # a clear error now, not in every worker
    if args.api_key_file:
        _check_file(args.api_key_file, "--api-key-file")
        with open(args.api_key_file, encoding="utf-8") as f:
            if not f.read().strip():
                raise UserError(f"--api-key-file: {args.api_key_file!r} is empty")
    if args.event_log:
        d = os.path.dirname(os.path.abspath(args.event_log))
        if not os.path.isdir(d):
            raise UserError(f"--event-log: directory {d!r} does not exist")
        if os.path.exists(args.event_log) and not os.path.isfile(args.event_log):
            raise UserError(f"--event-log: {args.event_log!r} is not a regular file")
    os.environ["TASTEMAKER_SERVE_BUNDLE"] = os.path.abspath(args.bundle)
    os.environ["TASTEMAKER_SERVE_API_KEY_FILE"] = (os.path.abspath(args.api_key_file)
                                                   if args.api_key_file else "")
    os.environ["TASTEMAKER_SERVE_EVENT_LOG"] = (os.path.abspath(args.event_log)
                                                if args.event_log else "")
    os.environ["TASTEMAKER_SERVE_MAX_INFLIGHT"] = str(args.max_inflight)
    os.environ["TASTEMAKER_SERVE_WATCH"] = "0" if args.no_watch else "1"
    uvicorn.run("tastemaker.serve.app:app_from_env", factory=True, host=args.host,
                port=args.port, workers=args.workers, log_level="warning")
    return 0


_COMMANDS = {"serve": _cmd_serve, "demo": _cmd_demo, "fit": _cmd_fit, "recommend": _cmd_recommend,
             "similar": _cmd_similar, "evaluate": _cmd_evaluate, "homepage": _cmd_homepage,
             "explain": _cmd_explain}


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USER_ERROR
    if args.command == "show-config":
        from . import show_config

        show_config()
        return 0
    try:
        return _COMMANDS[args.command](args)
    except (UserError, ValueError, OSError) as exc:
        if os.environ.get("TASTEMAKER_DEBUG"):
            raise
        text = str(exc).strip()
        msg = text.splitlines()[0] if text else type(exc).__name__
        print(f"tastemaker: error: {msg}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("tastemaker: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
