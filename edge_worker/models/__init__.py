"""Model catalogue: aliases, packaged models and random-weight shapes, loaded offline.

See ``edge_worker.models.catalog`` for the contract.
"""

from edge_worker.models.catalog import ALIASES, LoadedModel, load_model, shape_config

__all__ = ["ALIASES", "LoadedModel", "load_model", "shape_config"]
