"""Event logs -> training data: :class:`Interactions`, confidence transforms, data sets."""

from . import weighting
from .interactions import DEFAULT_EVENT_WEIGHTS, Interactions
from .weighting import apply_transform

__all__ = ["Interactions", "DEFAULT_EVENT_WEIGHTS", "weighting", "apply_transform"]
