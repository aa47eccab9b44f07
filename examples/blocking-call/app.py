"""Blocking calls in a FastAPI app, two ways.

GET /naive/ping is the question's endpoint: an `async def` that calls the blocking
function directly. It blocks the event loop, the one thread that serves every
request, so two requests at once run one after the other (and every other request
waits too).

GET /ping runs the same function as an offload job (task "ping" of offload.toml) and
awaits it: the event loop is free meanwhile, and the calls run in offload's worker
processes side by side, so two requests at once take the time of one.

    /usr/bin/python3 -m uvicorn app:app      # offload already running on :8080

OFFLOAD_URL names another server (the test starts one on a free port).
"""

import os

from fastapi import FastAPI, Query

import offload
from slow import ping as blocking_ping

app = FastAPI()
client = offload.AsyncClient(os.environ.get("OFFLOAD_URL", "http://127.0.0.1:8080"))


@app.get("/naive/ping")
async def naive_ping(seconds: float = Query(1.0, ge=0, le=60)):
    return blocking_ping(seconds)  # Blocks the event loop for `seconds`.


@app.get("/ping")
async def ping(seconds: float = Query(1.0, ge=0, le=60)):
    return await client.run("ping", seconds)  # The event loop serves others meanwhile.


@app.on_event("shutdown")
async def close_client():
    await client.close()
