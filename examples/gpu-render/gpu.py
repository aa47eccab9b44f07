"""A render that pretends to use the one GPU: it blocks for a while, in
steps, reporting progress, and returns a PNG. Standard library only.

offload calls render(scene, ctx) in its worker process, one job at a time (the task
holds the one `gpu` unit of offload.toml), so the blocking is harmless: it blocks
the worker, never the FastAPI app. Replace the body with the real GPU call and keep
the ctx lines:

- ctx.progress(fraction) shows as the job's `progress` (GET /render/{id});
- ctx.check() raises offload.Canceled once the job is canceled (DELETE /render/{id});
  call it between steps. ctx.sleep(seconds) waits like time.sleep but wakes at once
  on a cancel.

RENDER_STEP_SECONDS (in offload's environment; default 0.5) is how long one step
pretends to take: a default scene of 10 steps takes 5 s.
"""

import os
import struct
import zlib

from offload import JobError

STEP_SECONDS = float(os.environ.get("RENDER_STEP_SECONDS", "0.5"))


def render(scene, ctx):
    """scene: {"name": str, "width": int, "height": int, "steps": int}; the result is
    the PNG's bytes, sent as image/png (the task's content_type)."""
    width, height, steps = scene.get("width", 64), scene.get("height", 64), scene.get("steps", 10)
    for key, value, limit in (("width", width, 2048), ("height", height, 2048), ("steps", steps, 1000)):
        if not isinstance(value, int) or not 1 <= value <= limit:
            raise JobError("invalid_input", "scene.%s must be an integer from 1 to %d" % (key, limit))
    for step in range(steps):
        ctx.sleep(STEP_SECONDS)  # The GPU's work would go here; this wakes at once on cancel.
        ctx.check()  # Raises offload.Canceled once the job is canceled.
        ctx.progress((step + 1) / steps)
    return png(width, height, color_of(str(scene.get("name", ""))))


def color_of(name):
    """An RGB colour that depends on the scene's name, so that renders differ."""
    digest = zlib.crc32(name.encode())
    return (digest & 0xFF, (digest >> 8) & 0xFF, (digest >> 16) & 0xFF)


def png(width, height, rgb):
    """A width x height PNG: a vertical gradient from black to ``rgb`` (8-bit RGB)."""
    rows = []
    for y in range(height):
        shade = bytes(channel * (y + 1) // height for channel in rgb)
        rows.append(b"\x00" + shade * width)  # Filter type 0 (none), then the pixels.

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, no interlace.
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))
