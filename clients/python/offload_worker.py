"""offload_worker: the older name of offload.worker's run() API, kept for worker files.

A worker file written for it keeps working unchanged::

    import offload_worker

    def handle(job):
        return {"echo": job.input}

    offload_worker.run(handle)

New code can skip the file altogether with a `python = "module:function"` task (see
offload/worker.py), or import the same names from offload.worker. Every other name
(`_protocol`, the protocol stream that tests write to directly, included) is looked up
in offload.worker when asked for, so it always reflects the runner's current state.
"""

from offload import worker as _worker
from offload.worker import Job, JobError, run

__all__ = ["Job", "JobError", "run"]


def __getattr__(name):
    return getattr(_worker, name)
