"""Recommendation models."""

from .base import FactorModel
from .als import ALS
from .popularity import Popularity
from .knn import ItemKNN

__all__ = ["FactorModel", "ALS", "Popularity", "ItemKNN"]
