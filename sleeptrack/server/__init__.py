"""The sleeptrack server: FastAPI app with the Users, Session and Data APIs, webhooks and workers.

``sleeptrack serve`` runs :func:`create_app` under uvicorn; tests and embedders can run it themselves.
"""

from ._app import create_app
from ._context import ServerContext
from ._errors import ApiError, Detail

__all__ = ["ApiError", "Detail", "ServerContext", "create_app"]
