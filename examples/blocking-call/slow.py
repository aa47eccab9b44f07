"""A blocking call: time.sleep stands in for any call that holds its thread
until it is done, such as a library without async support, a synchronous driver, a
CPU-bound loop. Nothing here knows about offload."""

import os
import time


def ping(seconds):
    """Blocks for ``seconds``, then answers which process did it."""
    time.sleep(seconds)
    return {"ping": "pong", "seconds": seconds, "pid": os.getpid()}
