"""Recommendation models."""

from .base import FactorModel
from .als import ALS

__all__ = ["FactorModel", "ALS"]
