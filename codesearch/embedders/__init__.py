"""Embedding backends behind one interface (base.Embedder) and one factory (factory.make_embedder).

Importing the package is cheap (no torch, no transformers): each backend imports its
heavy libraries when it is built.
"""

from .base import DocumentJob, Embedder
from .spec import ModelSpec, models_match

__all__ = ["DocumentJob", "Embedder", "ModelSpec", "models_match"]
