"""Image inputs: base64 PNG/JPEG in the record, or a key in the tenant's storage area, decoded with Pillow.

A bad image is a per-record error (`ImageError` carries its code), never a failed part.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import warnings

from PIL import Image, UnidentifiedImageError

from shared import keys
from shared.storage import ObjectNotFound, Storage

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 64_000_000
FORMATS = ("PNG", "JPEG")


class ImageError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def decode_image(data: bytes) -> Image.Image:
    """PNG or JPEG bytes → an RGB image fully loaded in memory."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError("image_too_large", f"the image has {len(data)} bytes; at most {MAX_IMAGE_BYTES}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in FORMATS:
                raise ImageError("invalid_image", f"the image is {image.format}; PNG or JPEG expected")
            if image.width * image.height > MAX_PIXELS:
                raise ImageError("image_too_large", f"the image has {image.width}x{image.height} pixels")
            image.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as e:
        raise ImageError("invalid_image", f"the image cannot be decoded: {e}") from e
    return image.convert("RGB")


def decode_base64_image(value: str) -> Image.Image:
    text = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ImageError("invalid_image", f"'image' is not valid base64: {e}") from e
    return decode_image(data)


def tenant_image_key(tenant_id: str, image_key: str) -> str:
    """The storage key of an `image_key`: relative to the tenant's area (or already inside it), never out."""
    prefix = keys.tenant_prefix(tenant_id)
    relative = image_key[len(prefix) :] if image_key.startswith(prefix) else image_key
    parts = relative.split("/")
    if not relative or relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ImageError(
            "invalid_image_key", f"image_key {image_key!r} is not a key inside your storage area"
        )
    if relative.startswith("t/"):
        raise ImageError("invalid_image_key", f"image_key {image_key!r} is outside your storage area")
    return prefix + relative


def load_image_key(storage: Storage, tenant_id: str, image_key: str) -> Image.Image:
    key = tenant_image_key(tenant_id, image_key)
    try:
        data = storage.read_bytes(key)
    except ObjectNotFound as e:
        raise ImageError("image_not_found", f"image_key {image_key!r} does not exist") from e
    return decode_image(data)
