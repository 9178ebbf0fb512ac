"""Performance-Cost Optimized Scheduler: predict quality, cost and latency, then choose.

``predictors`` estimate, per candidate model, P(right) for this query (kNN over past
outcomes, or per-model logistic regression), output tokens and cost, and latency;
``Scheduler`` turns those into one choice and a fail-over ranking, exploring where
the predictions are unsure and honouring quality, cost and budget constraints.
"""

from .features import QUERY_FEATURES_DIM, TASK_BUCKETS, query_features
from .predictors import (
    KNNPrediction,
    KNNQualityPredictor,
    LatencyPredictor,
    LogisticQualityPredictor,
    TokenCostPredictor,
)
from .scheduler import PRESETS, Decision, Scheduler

__all__ = [
    "PRESETS",
    "QUERY_FEATURES_DIM",
    "TASK_BUCKETS",
    "Decision",
    "KNNPrediction",
    "KNNQualityPredictor",
    "LatencyPredictor",
    "LogisticQualityPredictor",
    "Scheduler",
    "TokenCostPredictor",
    "query_features",
]
