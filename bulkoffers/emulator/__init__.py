"""A local aiohttp.web server of Adobe's Offer Library API (DPS and xcore) with IMS and switchable faults."""

from .app import container_id, create_app
from .server import EmulatorServer, serve_forever
from .settings import (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID, DEFAULT_SANDBOX, FALLBACK_SCHEMA,
                       EmulatorConfig, Faults)

__all__ = ["EmulatorServer", "EmulatorConfig", "Faults", "create_app", "serve_forever", "container_id",
           "DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "DEFAULT_ORG_ID", "DEFAULT_SANDBOX", "FALLBACK_SCHEMA"]
