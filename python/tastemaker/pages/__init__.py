"""The product layer: one object that serves home pages, "because you watched" rows,
explanations and live updates by external ids (see :class:`Personalizer`)."""

from ..io import register_bundle
from .catalog import Catalog
from .personalizer import ROW_KINDS, Personalizer
from .rerank import calibrate, mmr
from .rows import Explanation, Page, Row
from .rules import Rules
from .tastes import Taste, Tastes

register_bundle("personalizer", Personalizer.load)

__all__ = ["Personalizer", "Row", "Page", "Explanation", "Rules", "Catalog", "ROW_KINDS",
           "mmr", "calibrate", "Taste", "Tastes"]
