"""Circuit-discovery graph engine for transformer language models."""

from circuits.models import DEFAULT_MODEL, LoadedModel, list_models, load_model

__version__ = "0.1.0"
__all__ = ["DEFAULT_MODEL", "LoadedModel", "__version__", "list_models", "load_model"]
