"""Use cases written once, under every edge: the API routers, the local client and the
dashboard call these functions and get the same typed (pydantic) results; the remote
client parses the same models from the wire. Services take the caller as a ``Principal``
and raise domain errors (``registry.errors``); they never build HTTP responses."""
