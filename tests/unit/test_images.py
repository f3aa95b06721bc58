"""worker/images.py: hostile images and keys are per-record `ImageError`s; pixels decode late and shrunk."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from inferq.shared.storage import LocalStorage
from inferq.worker.images import (
    ImageError,
    base64_source,
    image_key_source,
    model_image,
    probe,
    tenant_image_key,
)
from inferq.worker.task_formatter import TaskFormatter
from tests.helpers.hostile_images import b64, png_claiming, solid_png, truncated_png

TENANT = "ten_a"


def error_of(action: object) -> ImageError:
    with pytest.raises(ImageError) as caught:
        action()  # type: ignore[operator]
    return caught.value


def test_a_decompression_bomb_is_image_too_large() -> None:
    # given: a 20000x20000 PNG of under 1 KB (Pillow's own bomb limit is exceeded twice over)
    data = png_claiming(20000, 20000)
    assert len(data) < 1024
    # when / then
    assert error_of(lambda: probe(lambda: data)).code == "image_too_large"


def test_an_image_over_the_decoded_pixel_limit_is_image_too_large() -> None:
    # given: a 7900x7900 PNG (62M pixels: under Pillow's limit, 250 MB once decoded)
    error = error_of(lambda: probe(lambda: png_claiming(7900, 7900)))
    # then: refused from its header, with the limit named
    assert error.code == "image_too_large" and "7900x7900" in error.message
    assert "INFERQ_IMAGE_MAX_PIXELS" in error.message
    # and: a lower limit (a setting) applies as given
    assert error_of(lambda: probe(lambda: solid_png(100, 100), max_pixels=9999)).code == "image_too_large"


@pytest.mark.parametrize(
    "data", [b"hello, not an image", b"\x89PNG\r\n\x1a\nnot really", b"GIF89a" + b"\0" * 20]
)
def test_invalid_image_messages_carry_no_object_reprs(data: bytes) -> None:
    error = error_of(lambda: base64_source(b64(data)))
    assert error.code == "invalid_image"
    assert " at 0x" not in error.message and "<_io" not in error.message, error.message


@pytest.mark.parametrize("key", ["a\0b.png", "k" * 5000, "images/\n.png"])
def test_keys_no_storage_can_hold_are_invalid_image_key_with_short_messages(key: str) -> None:
    error = error_of(lambda: tenant_image_key(TENANT, key))
    assert error.code == "invalid_image_key" and len(error.message) < 300


def test_a_key_naming_a_folder_is_image_not_found(tmp_path: Path) -> None:
    # given: local storage where the tenant's area has a folder `jobs`
    storage = LocalStorage(tmp_path)
    storage.put_bytes(f"t/{TENANT}/jobs/j1/out.jsonl", b"{}\n")
    # when: a record names the folder as its image
    error = error_of(lambda: image_key_source(storage, TENANT, "jobs"))
    # then: a per-record error, not an IsADirectoryError out of the part
    assert error.code == "image_not_found"


def test_pixels_decode_only_when_asked_and_shrink_towards_the_model_input() -> None:
    # given: a 2000x1000 PNG and a 2000x2000 JPEG
    png = solid_png(2000, 1000)
    buf = io.BytesIO()
    Image.new("RGB", (2000, 2000), (10, 200, 10)).save(buf, "JPEG")
    reads: list[int] = []

    def read_png() -> bytes:
        reads.append(1)
        return png

    # when: checked
    source = probe(read_png)
    # then: only the header was looked at, and the size is known
    assert (source.width, source.height, source.format) == (2000, 1000, "PNG") and len(reads) == 1
    # and: decoded for a 224x224 model it comes at no less than 224 on a side, far below full size
    image = source.decode((224, 224))
    assert image.mode == "RGB" and 224 <= image.height < 448 and image.width == 2 * image.height
    jpeg = probe(lambda: buf.getvalue()).decode((224, 224))
    assert 224 <= jpeg.width < 448 and 224 <= jpeg.height < 448
    assert source.decode().size == (2000, 1000)  # no fit: full size


def test_an_image_that_fails_only_at_decode_keeps_its_error_and_stands_in_blank() -> None:
    # given: a PNG whose header passes and whose pixels are cut off
    source = probe(lambda: truncated_png())
    # when: its batch is built
    image = model_image(source, (16, 16))
    # then: a blank stand-in, and the error stays with the source for the record
    assert image.size == (16, 16)
    assert source.error is not None and source.error.code == "invalid_image"


def test_a_record_whose_image_fails_at_decode_is_an_error_and_never_counted_completed(
    tmp_path: Path,
) -> None:
    # given: a part of three images, the middle one truncated after a valid header
    formatter = TaskFormatter("image-classification", TENANT, LocalStorage(tmp_path), labelled=False)
    good = b64(solid_png(8, 8))
    data = "".join(
        json.dumps({"id": rid, "image": image}) + "\n"
        for rid, image in (("a", good), ("cut", b64(truncated_png())), ("b", good))
    ).encode()
    records, errors = formatter.parse(data, "jsonl", first_line=1, first_record=0, header=None)
    assert len(records) == 3 and errors == []
    inputs = formatter.inputs(records)
    # when: its batch is built
    images = [model_image(v, (4, 4)) for v in inputs.values]
    # then: progress counts two records done, and the third becomes its own error, not an output
    assert len(images) == 3 and inputs.records_done(3) == 2
    kept, outputs, tokens, late = formatter.failed_late(records, [{"n": 0}, {"n": 1}, {"n": 2}], [1, 1, 1])
    assert [r.id for r in kept] == ["a", "b"] and outputs == [{"n": 0}, {"n": 2}] and tokens == [1, 1]
    assert [(e.id, e.line, e.code) for e in late] == [("cut", 2, "invalid_image")]
