"""An offload worker in Python: a toy sentiment model, loaded once per process.

Copy this folder to start your own. offload starts `workers` of these processes
ahead of time (see offload.toml next to this file) and sends each one job at a
time, so the slow part, loading the model, happens once per process rather than
once per request. The protocol (docs/worker-protocol.md) is handled by
clients/python/offload_worker.py: you write a function from a job to a result.

Try it:

    offload serve --config examples/python-worker/offload.toml
    curl -s -X POST localhost:8080/v1/tasks/sentiment/run --json '{"text": "what a great day"}'
"""

import os
import time

import offload_worker

# --- Start-up: runs once per worker process. -----------------------------------
# A real worker would load weights here (torch.load, onnxruntime.InferenceSession,
# a tokenizer...). This one pretends it takes a while, then builds a tiny lexicon.
time.sleep(float(os.environ.get("MODEL_LOAD_SECONDS", "0.5")))
MODEL = {
    "good": 1.0, "great": 1.5, "love": 1.5, "excellent": 2.0, "happy": 1.0, "nice": 0.8,
    "bad": -1.0, "awful": -2.0, "hate": -1.5, "terrible": -2.0, "sad": -1.0, "slow": -0.5,
}
MODEL_LOADS = 1  # Stays 1 for the life of the process: that is the point.
JOBS_SERVED = 0


# --- Per job. ---------------------------------------------------------------------
def handle(job):
    """job.input is the JSON the client sent; the return value is the job's result."""
    global JOBS_SERVED
    text = job.input.get("text") if isinstance(job.input, dict) else None
    if not isinstance(text, str):
        # "invalid_input" makes offload answer 422 for this job's result.
        raise offload_worker.JobError("invalid_input", 'input.text must be a string, e.g. {"text": "nice"}')
    words = [w.strip(".,!?;:").lower() for w in text.split()]
    score = 0.0
    for i, w in enumerate(words):
        score += MODEL.get(w, 0.0)
        if i % 1000 == 999:
            job.progress(i / len(words))  # Long inputs report progress.
    JOBS_SERVED += 1
    label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
    print(f"scored {len(words)} words: {label}")  # print() goes to offload's log, not the protocol.
    return {
        "label": label,
        "score": score,
        "worker": {"pid": os.getpid(), "model_loads": MODEL_LOADS, "jobs_served": JOBS_SERVED},
    }


offload_worker.run(handle)
