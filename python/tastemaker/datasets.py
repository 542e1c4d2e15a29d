"""``tastemaker.datasets``: loaders for files you have, and the synthetic demo log.

See :mod:`tastemaker.data.datasets` (MovieLens 100K / 1M / latest, Last.fm 2K) and
:mod:`tastemaker.data.synthetic` (:func:`synthetic_streaming`).
"""

from .data.datasets import (item_features, lastfm_2k, movielens_1m, movielens_100k,
                            movielens_latest)
from .data.interactions import DEFAULT_EVENT_WEIGHTS
from .data.synthetic import (CHILD_GENRES, DEVICES, EVENT_TYPES, GENRES, ITEM_TASTE,
                             TASTE_DIMS, SyntheticStreaming, synthetic_streaming)

__all__ = ["movielens_100k", "movielens_1m", "movielens_latest", "lastfm_2k",
           "synthetic_streaming", "item_features", "SyntheticStreaming", "DEFAULT_EVENT_WEIGHTS",
           "EVENT_TYPES", "GENRES", "DEVICES", "CHILD_GENRES", "ITEM_TASTE", "TASTE_DIMS"]
