"""Recommendation models."""

from .base import FactorModel
from .als import ALS
from .popularity import Popularity

__all__ = ["FactorModel", "ALS", "Popularity"]
