"""Recommendation models."""

from .als import ALS

__all__ = ["ALS"]
