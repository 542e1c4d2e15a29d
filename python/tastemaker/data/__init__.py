"""Event logs -> training data: :class:`Interactions`, :class:`ItemFeatures`, confidence
transforms, data sets."""

from . import weighting
from .features import ItemFeatures
from .interactions import DEFAULT_EVENT_WEIGHTS, Interactions
from .weighting import apply_transform

__all__ = ["Interactions", "ItemFeatures", "DEFAULT_EVENT_WEIGHTS", "weighting", "apply_transform"]
