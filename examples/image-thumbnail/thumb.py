"""The thumbnail task: an uploaded image in, a PNG thumbnail out (Pillow).

offload streams the upload to disk and hands the function its path
(python_input = "path", the default), so a 50 MB photo is never a 50 MB request
body in a web process. Posted as a form with a JSON "input" part ({"size": 64}),
the function gets that input and finds the image in ctx.files.
"""

import io

from PIL import Image, UnidentifiedImageError

import offload

DEFAULT_SIZE = 128


def thumbnail(arg, ctx):
    if isinstance(arg, str):  # A bare upload: the path of the image.
        path, size = arg, DEFAULT_SIZE
    else:  # A form: the options, and the image among the files.
        options = arg or {}
        size = options.get("size", DEFAULT_SIZE)
        if not isinstance(size, int) or not 1 <= size <= 4096:
            raise offload.JobError("invalid_input", "size must be an integer from 1 to 4096")
        if not ctx.files:
            raise offload.JobError("invalid_input", "send the image as a file part of the form")
        path = ctx.files[0].path
    try:
        with Image.open(path) as image:
            image.thumbnail((size, size))
            out = io.BytesIO()
            image.save(out, format="PNG")
    except UnidentifiedImageError:
        raise offload.JobError("invalid_input", "the upload is not an image Pillow can read") from None
    return out.getvalue()
