"""Recommendation models."""

from .base import FactorModel
from .als import ALS
from .popularity import Popularity
from .content import ContentModel
from .hybrid import HybridALS

__all__ = ["FactorModel", "ALS", "Popularity", "ContentModel", "HybridALS"]
