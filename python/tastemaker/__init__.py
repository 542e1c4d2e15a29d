"""tastemaker: a personalization engine on SIMD + OpenMP C++ kernels.

Public API: models (``ALS``, ``ExplicitALS``, ``ItemKNN``, ``EASE``, ``Popularity``,
``ContentModel``, ``HybridALS``), data (``Interactions``, ``ItemFeatures``, ``datasets``),
evaluation (``evaluate``), persistence (``load``), runtime configuration (``show_config``,
``set_num_threads``) and ``IdError`` (an out-of-range id: both a ``ValueError`` and an
``IndexError``).
"""

from ._config import (
    get_num_threads,
    set_num_threads,
    set_simd_path,
    show_config,
    simd_path,
)
from ._core import __version__
from ._validation import IdError
from . import evaluation
from .data import Interactions, ItemFeatures
from .io import load
from .models import ALS, EASE, ContentModel, ExplicitALS, HybridALS, ItemKNN, Popularity
from .evaluation import evaluate, tune
from . import datasets
from .pages import Explanation, Page, Personalizer, Row, Rules

__all__ = [
    "__version__",
    "IdError",
    "show_config",
    "set_num_threads",
    "get_num_threads",
    "simd_path",
    "set_simd_path",
    "evaluation",
    "Interactions",
    "ItemFeatures",
    "load",
    "ALS",
    "Popularity",
    "ItemKNN",
    "EASE",
    "ExplicitALS",
    "ContentModel",
    "HybridALS",
    "evaluate",
    "tune",
    "datasets",
    "Personalizer",
    "Row",
    "Page",
    "Explanation",
    "Rules",
]
