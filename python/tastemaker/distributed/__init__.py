"""ALS training and batch recommendations on a Dask cluster (extra ``tastemaker[distributed]``).

* :func:`fit_als` trains implicit ALS from a Dask DataFrame or Parquet files of events,
  with the weighting options of :meth:`tastemaker.Interactions.from_frame`, and returns
  an ordinary :class:`tastemaker.ALS` (the same model as the single-machine fit).
* :func:`recommend_all` writes the top-N of every user, seen items left out, as
  partitioned Parquet.
"""

try:
    import dask  # noqa: F401
    import distributed  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("tastemaker.distributed needs Dask: pip install 'tastemaker[distributed]'"
                      ) from exc

from ._fit import fit_als
from ._recommend import recommend_all

__all__ = ["fit_als", "recommend_all"]
