"""bulkoffers: bulk-create Adobe Offer Library fallback offers from spreadsheets.

The library API behind the `bulkoffers` command (see README.md, "Python API"):

    from bulkoffers import ImportConfig, Target, Credentials, import_file
    summary = import_file(ImportConfig(input=..., results=..., failures=..., target=..., credentials=...))

Every function here raises only BulkOffersError subclasses (the tree is in bulkoffers.errors); an error
that ends a run which wrote results carries the run's `summary`. Names load lazily, so that
`import bulkoffers` and `bulkoffers --help` stay fast: pandas and aiohttp are imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name → the module that defines it
_EXPORTS = {
    "import_file": "engine", "validate": "source", "rollback": "undo", "check_auth": "whoami", "verify": "verify",
    "export_offers": "export", "copy_offers": "export", "OfferFilter": "export", "load_journal": "runrecord",
    "ImportConfig": "config", "ApiConfig": "config", "Target": "config", "Credentials": "config",
    "RateLimit": "config", "RetryPolicy": "config", "ReadOptions": "config", "MappingSpec": "config",
    "load_mapping": "config", "Summary": "results", "RowResult": "results",
    "BulkOffersError": "errors", "ConfigError": "errors", "InputError": "errors", "RowError": "errors",
    "ApiError": "errors", "FatalApiError": "errors", "LookupFailed": "errors", "Interrupted": "errors",
}
__all__ = [
    "__version__", "import_file", "validate", "rollback", "check_auth", "verify", "export_offers", "copy_offers",
    "OfferFilter", "load_journal",
    "ImportConfig", "ApiConfig", "Target", "Credentials", "RateLimit", "RetryPolicy", "ReadOptions", "MappingSpec",
    "load_mapping", "Summary", "RowResult",
    "BulkOffersError", "ConfigError", "InputError", "RowError", "ApiError", "FatalApiError", "LookupFailed",
    "Interrupted",
]

if TYPE_CHECKING:  # for type checkers and editors; at run time __getattr__ loads on first use
    from .config import (ApiConfig, Credentials, ImportConfig, MappingSpec, RateLimit, ReadOptions, RetryPolicy,
                         Target, load_mapping)
    from .engine import import_file
    from .export import OfferFilter, copy_offers, export_offers
    from .runrecord import load_journal
    from .verify import verify
    from .errors import (ApiError, BulkOffersError, ConfigError, FatalApiError, InputError, Interrupted,
                         LookupFailed, RowError)
    from .results import RowResult, Summary
    from .source import validate
    from .undo import rollback
    from .whoami import check_auth


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bulkoffers' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
