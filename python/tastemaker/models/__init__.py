"""Recommendation models."""

from .base import FactorModel, Model
from .als import ALS
from .popularity import Popularity

__all__ = ["Model", "FactorModel", "ALS", "Popularity"]
