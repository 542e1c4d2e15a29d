"""Shared accounts on the validation logs: bench/shared_accounts.py on seeds that its
evaluation seeds (0-2) never see, and the mean of each target ratio over them.

Settings of ``Tastes`` are chosen on these logs (default seeds 10-19) and only then
confirmed on seeds 0-2, so that a target is not met by tuning on the seeds it is judged
on.  Every log's full JSON is written beside the summary (``--prefix`` + ``_seedN.json``).

    python bench/shared_accounts_validation.py [--seeds 10-19] [--users 4000]
        [--prefix bench/results/shared_accounts_s21_validation] [-- extra bench options]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import shared_accounts

#: (name in the summary, block of the bench JSON, key in it); the targets' ratios
FIGURES = (("detection_f1", "detection", "f1"),
           ("overall_auto/single", "all_accounts", "auto_over_single"),
           ("weaker_persona_auto/single", "weaker_persona", "auto_over_single"),
           ("shared_context/single", "shared_accounts", "context_over_single"))
TARGETS = {"detection_f1": 0.8, "overall_auto/single": 0.98,
           "weaker_persona_auto/single": 1.5, "shared_context/single": 1.3}


def _seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="10-19", help="log seeds, e.g. 10-19 or 10,12")
    ap.add_argument("--users", type=int, default=4000)
    ap.add_argument("--prefix", default=os.path.join(
        os.path.dirname(__file__), "results", "shared_accounts_validation"))
    args, extra = ap.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    t0 = time.time()
    load0 = os.getloadavg()[0]
    per_log = {}
    for seed in _seeds(args.seeds):
        res = shared_accounts.main(["--seed", str(seed), "--users", str(args.users),
                                    "--output", f"{args.prefix}_seed{seed}.json", *extra])
        per_log[seed] = {name: res[block][key] for name, block, key in FIGURES}
        per_log[seed]["weaker_persona_accounts"] = res["weaker_persona"]["accounts"]
    summary = {}
    for name, _, _ in FIGURES:
        v = np.array([r[name] for r in per_log.values()], dtype=np.float64)
        summary[name] = {"mean": round(float(v.mean()), 3), "min": round(float(v.min()), 3),
                         "max": round(float(v.max()), 3),
                         "logs_meeting_target": int((v >= TARGETS[name]).sum()),
                         "target": TARGETS[name],
                         "mean_meets_target": bool(v.mean() >= TARGETS[name])}
    result = {"benchmark": "shared_accounts_validation",
              "command": "python bench/shared_accounts_validation.py "
                         + " ".join(argv if argv is not None else sys.argv[1:]),
              "when_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
              "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2),
              "seconds": round(time.time() - t0, 1), "users": args.users,
              "extra_options": extra, "per_log": per_log, "summary": summary}
    with open(f"{args.prefix}.json", "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps({"summary": summary, "per_log": per_log}, indent=2))
    return result


if __name__ == "__main__":
    main()
