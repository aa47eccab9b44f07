"""A render API on one GPU: POST /render answers 202 at once, the renders
run one at a time in submission order, the client polls and fetches the PNG later.

The question's queue (an asyncio.Queue and a consumer task calling the blocking render
in the event loop) is offload's: a job per render, on the `gpu` resource of
offload.toml, stored before the 202. This app only translates; nothing in it blocks,
so it keeps answering while renders wait.

    POST   /render             {"name": "001", "width": 64, "height": 64, "steps": 10}
                               -> 202, Location: /render/ID, {"id", "status", "position", ...}
    GET    /render/ID          -> {"id", "status", "position", "progress", "image"?, "error"?}
    GET    /render/ID.png      -> the PNG once rendered; 409 before (Retry-After) or if it
                                  failed or was canceled; 404 if there is no such render
    DELETE /render/ID          -> cancels it (queued: it never starts; running: it stops)

    /usr/bin/python3 -m uvicorn app:app      # offload already running on :8080

OFFLOAD_URL names another server (the test starts one on a free port).
"""

import os

from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel, Field

import offload

app = FastAPI()
client = offload.AsyncClient(os.environ.get("OFFLOAD_URL", "http://127.0.0.1:8080"))


class Scene(BaseModel):
    name: str
    width: int = Field(64, ge=1, le=2048)
    height: int = Field(64, ge=1, le=2048)
    steps: int = Field(10, ge=1, le=1000)


def describe(job):
    """What a client of this API sees of a job: its state, and where the image is."""
    view = {"id": job.id, "status": job.status, "position": job.position, "progress": job.progress}
    if job.succeeded:
        view["image"] = "/render/%s.png" % job.id
    if job.error:
        view["error"] = job.error
    return view


@app.post("/render", status_code=202)
async def submit(scene: Scene, response: Response):
    job = await client.submit("render", scene.dict())
    response.headers["Location"] = "/render/" + job.id
    return describe(job)


# Before /render/{job_id}, which would otherwise take "ID.png" for an id.
@app.get("/render/{job_id}.png")
async def image(job_id: str):
    try:
        png = await client.result(job_id)
    except offload.NotFound:
        raise HTTPException(404, "no render %s" % job_id)
    except offload.NotFinished as e:
        raise HTTPException(409, "render %s is not done yet: see GET /render/%s" % (job_id, job_id),
                            headers={"Retry-After": str(int(e.retry_after or 1))})
    except offload.JobFailed as e:  # Failed, or canceled (JobCanceled).
        raise HTTPException(409, "render %s has no image: %s" % (job_id, e.error["message"]))
    return Response(png, media_type="image/png")


@app.get("/render/{job_id}")
async def status(job_id: str):
    try:
        return describe(await client.get(job_id))
    except offload.NotFound:
        raise HTTPException(404, "no render %s" % job_id)


@app.delete("/render/{job_id}")
async def cancel(job_id: str):
    try:
        return describe(await client.cancel(job_id))
    except offload.NotFound:
        raise HTTPException(404, "no render %s" % job_id)
    except offload.Conflict:
        raise HTTPException(409, "render %s is already finished" % job_id)


@app.on_event("shutdown")
async def close_client():
    await client.close()
