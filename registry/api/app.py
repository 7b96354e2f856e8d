"""The FastAPI app factory: builds the app from a Runtime; nothing happens at import."""

from __future__ import annotations

from fastapi import FastAPI

from registry import __version__
from registry.api.errors import install_error_handlers
from registry.api.routers import adapters, health, resolve
from registry.runtime import Runtime


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="lorareg",
        version=__version__,
        description="A registry for LoRA adapters. Errors are "
        '`{"error": {"code": "...", "message": "..."}}` with a stable code.',
    )
    app.state.runtime = runtime
    app.state.presign_cache = resolve.PresignCache()
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(adapters.router)
    app.include_router(resolve.router)
    return app
