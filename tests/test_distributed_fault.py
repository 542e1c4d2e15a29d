"""tastemaker.distributed.fit_als survives a worker process killed mid-iteration.

Its own module, so that the in-process cluster of test_distributed.py is closed before
worker processes are forked here."""

from __future__ import annotations

import os
import signal

import pytest

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import tastemaker as tm
from tastemaker.distributed import fit_als
from test_distributed import ALS_PARAMS, WEIGHTING, assert_same_model, single_machine


def test_killed_worker_mid_iteration_changes_nothing():
    """A worker process killed while iterations are running: Dask restarts it, recomputes
    the lost blocks from their lineage, and the model is the same."""
    events = tm.datasets.synthetic_streaming(n_users=400, n_items=150, seed=3).events
    data, ref = single_machine(events, WEIGHTING, **dict(ALS_PARAMS, iterations=6))
    # worker processes forked, not spawned: a spawned worker imports everything again
    # (seconds per worker on a busy 2-core CI machine)
    with dask.config.set({"distributed.worker.multiprocessing-method": "fork"}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        c.wait_for_workers(2, timeout=120)  # registration can lag under load
        pids = c.run(os.getpid)
        victim = min(pids)
        killed = []

        def kill(it, elapsed, loss):
            if it == 1 and not killed:  # iterations 2.. are already queued or running
                os.kill(pids[victim], signal.SIGKILL)
                killed.append(victim)

        model = fit_als(c, dd.from_pandas(events, npartitions=3), callback=kill,
                        show_progress=False, **WEIGHTING, **dict(ALS_PARAMS, iterations=6))
        assert killed
    assert_same_model(model, data, ref)
