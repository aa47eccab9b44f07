"""A FastAPI endpoint that runs cpu_bound_func over a list on every core.

The ProcessPoolExecutor answer needs a pool created at start-up, shut down at exit,
and run_in_executor per element; here the pool is offload's workers (offload.toml),
and the endpoint is one awaited call. The event loop stays free while the list is
computed: other requests are served meanwhile.

    /usr/bin/python3 -m uvicorn app:app      # offload already running on :8080

OFFLOAD_URL names another server (the test starts one on a free port).
"""

import os

from fastapi import FastAPI

import offload

app = FastAPI()
client = offload.AsyncClient(os.environ.get("OFFLOAD_URL", "http://127.0.0.1:8080"))


@app.post("/primes")
async def primes(numbers: list[int]):
    """For each n of the list, the number of primes below n, in the list's order."""
    return {"counts": await client.map("primes", numbers)}


@app.on_event("shutdown")
async def close_client():
    await client.close()
