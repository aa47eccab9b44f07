"""examples/image-thumbnail against the real server: a PNG posted as its body and as a
form comes back as a PNG thumbnail; a type the task does not take is refused (415)
and an upload that is not an image fails as invalid input (422)."""

import io
import os
import sys

import pytest
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402  (examples/harness.py, beside this folder)

import offload  # noqa: E402  (clients/python, put on sys.path by harness)

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    # The workers' python3 must be the one with Pillow: Debian's (python3-pil), which
    # scripts/install-deps.sh installs, ahead of any other on PATH.
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    server = harness.Offload(os.path.join(HERE, "offload.toml"), str(tmp_path_factory.mktemp("offload")),
                             env={"PATH": path})
    try:
        with offload.Client(server.url) as c:
            yield c
    finally:
        server.stop()


def photo(width, height):
    image = Image.new("RGB", (width, height))
    for x in range(0, width, 7):
        image.putpixel((x, x * height // width), (255, x % 256, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def size_of(png):
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        return image.size


def test_a_posted_png_comes_back_as_a_thumbnail(client, tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(photo(1600, 900))
    thumb = client.run("thumbnail", file=str(path))
    assert size_of(thumb) == (128, 72)


def test_a_form_with_options_sets_the_size(client):
    thumb = client.run("thumbnail", {"size": 64}, bytes=photo(300, 600), filename="tall.png")
    assert size_of(thumb) == (32, 64)


def test_a_type_the_task_does_not_take_is_refused(client):
    with pytest.raises(offload.UnsupportedMediaType):
        client.run("thumbnail", bytes=b"GIF89a", content_type="image/gif")


def test_bytes_that_are_not_an_image_are_invalid_input(client):
    with pytest.raises(offload.JobFailed) as failed:
        client.run("thumbnail", bytes=b"not a png at all", content_type="image/png")
    assert failed.value.error["type"] == "invalid_input"
