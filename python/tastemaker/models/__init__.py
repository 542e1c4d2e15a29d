"""Recommendation models."""

from .base import FactorModel, Model
from .als import ALS
from .popularity import Popularity
from .content import ContentModel
from .hybrid import HybridALS

__all__ = ["Model", "FactorModel", "ALS", "Popularity", "ContentModel", "HybridALS"]
