"""The HTTP service over a Personalizer bundle (extra ``[serve]``: FastAPI + uvicorn).

``tastemaker serve BUNDLE`` runs it; :func:`create_app` builds the ASGI app for
embedding or tests.
"""

from .app import ServeError, ServiceState, create_app

__all__ = ["create_app", "ServiceState", "ServeError"]
