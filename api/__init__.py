"""HTTP API v1 (API.md): FastAPI app served by uvicorn through `gd api`."""
