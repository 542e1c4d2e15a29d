"""Recommendation models."""

from .base import FactorModel
from .als import ALS
from .popularity import Popularity
from .knn import ItemKNN
from .ease import EASE
from .explicit import ExplicitALS

__all__ = ["FactorModel", "ALS", "Popularity", "ItemKNN", "EASE", "ExplicitALS"]
