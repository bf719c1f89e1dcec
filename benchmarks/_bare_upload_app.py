"""The baseline of ``bench_server``: a bare FastAPI endpoint that only writes the request body to a file."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

OUT = Path(os.environ.get("BARE_UPLOAD_DIR", "/tmp/bare-upload"))
OUT.mkdir(parents=True, exist_ok=True)
_counter = itertools.count()

app = FastAPI()


@app.post("/upload")
async def upload(request: Request) -> JSONResponse:
    body = await request.body()
    (OUT / f"{next(_counter)}.bin").write_bytes(body)
    return JSONResponse({"detail": "success", "result": None})


@app.get("/healthz")
async def healthz() -> JSONResponse:
    return JSONResponse({"detail": "OK", "result": None})
