"""Recommendation models."""

from .base import FactorModel, Model
from .als import ALS
from .popularity import Popularity
from .knn import ItemKNN
from .ease import EASE
from .explicit import ExplicitALS
from .content import ContentModel
from .hybrid import HybridALS

__all__ = ["Model", "FactorModel", "ALS", "Popularity", "ItemKNN", "EASE", "ExplicitALS",
           "ContentModel", "HybridALS"]
