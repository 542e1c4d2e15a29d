"""Evaluation: splitters, ranking / rating / beyond-accuracy metrics and ``evaluate``."""

from . import metrics, splitters
from .evaluate import EVALUATE_METRICS, evaluate
from .tune import SEARCH_SPACES, TuneResult, tune
from .metrics import (
    RANKING_METRICS,
    auc_at_k,
    catalog_coverage,
    hit_rate_at_k,
    intra_list_diversity,
    item_popularity,
    mae,
    map_at_k,
    map_full_at_k,
    mrr_at_k,
    ndcg_at_k,
    novelty,
    personalization,
    popularity_bias,
    precision_at_k,
    ranking_metrics_at_k,
    recall_at_k,
    rmse,
)
from .splitters import (
    UserFold,
    cold_item_split,
    leave_last_k_out_split,
    random_split,
    stratified_split,
    temporal_split,
    user_kfold_split,
)

__all__ = ["metrics", "splitters", "evaluate", "EVALUATE_METRICS", "tune", "TuneResult",
           "SEARCH_SPACES", *metrics.__all__, *splitters.__all__]
