"""Image inputs: base64 PNG/JPEG in the record, or a key in the tenant's storage area, decoded with Pillow.

A bad image is a per-record error (`ImageError` carries its code), never a failed part.

Memory: a part's images are checked from their headers only while the part is parsed (`probe`: format,
size, the decoded-pixel limit) and held as `ImageSource`s (their encoded bytes or their storage key).
Pixels are decoded when a batch is built (`ImageSource.decode`), one image at a time, shrunk at once to
the model's input size (JPEG: `draft`, decoded at 1/2 to 1/8 scale; PNG: `Image.reduce` right after the
load), so decoded pixels are bounded by the batch, not by the part. The largest image a worker decodes
is `Settings.image_max_pixels` (INFERQ_IMAGE_MAX_PIXELS, default 16.7M = 4096x4096: 64 MiB as RGBA,
transiently, one image at a time); a classifier of 224x224 inputs needs far less.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from inferq.shared import keys
from inferq.shared.storage import ObjectNotFound, Storage, StorageError, StorageUnavailable

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_PIXELS = 4096 * 4096
FORMATS = ("PNG", "JPEG")
# S3 keys are at most 1024 bytes; control characters (NUL…) are no part of a key a tenant can upload.
MAX_KEY_BYTES = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")
_SHOWN_KEY_CHARS = 100


class ImageError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _reason(error: BaseException) -> str:
    """What Pillow says went wrong, without object reprs (`<_io.BytesIO object at 0x…>`)."""
    text = _REPR.sub("", str(error)).strip(" :")
    return text or type(error).__name__


def _shown(image_key: str) -> str:
    """An image_key as messages show it: printable, and not 5,000 characters long."""
    cut = image_key[:_SHOWN_KEY_CHARS] + ("…" if len(image_key) > _SHOWN_KEY_CHARS else "")
    return repr(cut)


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Pillow's lazy image on `data` (header read, no pixels), checked against the limits."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError("image_too_large", f"the image has {len(data)} bytes; at most {MAX_IMAGE_BYTES}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError("image_too_large", f"the image has too many pixels: {_reason(e)}") from e
    except UnidentifiedImageError as e:
        raise ImageError("invalid_image", "the data is not a PNG or JPEG image") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError("invalid_image", f"the image cannot be decoded: {_reason(e)}") from e
    if image.format not in FORMATS:
        raise ImageError("invalid_image", f"the image is {image.format}; PNG or JPEG expected")
    if image.width * image.height > max_pixels:
        raise ImageError(
            "image_too_large",
            f"the image has {image.width}x{image.height} pixels; at most {max_pixels} pixels "
            "(INFERQ_IMAGE_MAX_PIXELS)",
        )
    return image


def _reduction(size: tuple[int, int], fit: tuple[int, int]) -> int:
    """The largest whole factor that keeps `size` at least `fit` on both sides (1: none)."""
    return max(1, min(size[0] // max(1, fit[0]), size[1] // max(1, fit[1])))


@dataclass
class ImageSource:
    """An image checked from its header only; its pixels are decoded when a batch needs them."""

    read: Callable[[], bytes]  # the encoded bytes (held, or read again from storage)
    format: str
    width: int
    height: int
    max_pixels: int = DEFAULT_MAX_PIXELS
    # Set when the pixels could not be decoded after the header passed (a truncated file): the record
    # becomes that error instead of a prediction (worker.task_formatter).
    error: ImageError | None = None

    def decode(self, fit: tuple[int, int] | None = None) -> Image.Image:
        """The RGB pixels; with `fit` (width, height), shrunk while loading to no less than that size."""
        image = _open(self.read(), self.max_pixels)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                if fit is not None and image.format == "JPEG":
                    image.draft("RGB", fit)
                image.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as e:
            raise ImageError("invalid_image", f"the image cannot be decoded: {_reason(e)}") from e
        if fit is not None:
            factor = _reduction(image.size, fit)
            if factor > 1:
                image = image.reduce(factor)
        return image.convert("RGB")


def probe(read: Callable[[], bytes], max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageSource:
    """Check an image from its header (format, size, limits) without decoding its pixels."""
    image = _open(read(), max_pixels)
    return ImageSource(read, str(image.format), image.width, image.height, max_pixels)


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """PNG or JPEG bytes → an RGB image fully loaded in memory, at its own size."""
    return probe(lambda: data, max_pixels).decode()


def _base64_bytes(value: str) -> bytes:
    text = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ImageError("invalid_image", f"'image' is not valid base64: {_reason(e)}") from e


def base64_source(value: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageSource:
    """A base64 image (a data: URL or plain base64); its bytes are decoded again when its batch needs them."""
    return probe(lambda: _base64_bytes(value), max_pixels)


def decode_base64_image(value: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    return base64_source(value, max_pixels).decode()


def tenant_image_key(tenant_id: str, image_key: str) -> str:
    """The storage key of an `image_key`: relative to the tenant's area (or already inside it), never out."""
    if len(image_key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES or _CONTROL.search(image_key):
        raise ImageError(
            "invalid_image_key",
            f"image_key {_shown(image_key)} is not a storage key: at most {MAX_KEY_BYTES} bytes, "
            "no control characters",
        )
    prefix = keys.tenant_prefix(tenant_id)
    relative = image_key[len(prefix) :] if image_key.startswith(prefix) else image_key
    parts = relative.split("/")
    if not relative or relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ImageError(
            "invalid_image_key", f"image_key {_shown(image_key)} is not a key inside your storage area"
        )
    if relative.startswith("t/"):
        raise ImageError("invalid_image_key", f"image_key {_shown(image_key)} is outside your storage area")
    return prefix + relative


def read_image_key(storage: Storage, tenant_id: str, image_key: str) -> bytes:
    """The bytes of an image_key. Storage being down (`StorageUnavailable`) is not the record's fault and
    propagates (the part is retried); anything else about the key is a per-record error."""
    key = tenant_image_key(tenant_id, image_key)
    try:
        return storage.read_bytes(key)
    except StorageUnavailable:
        raise
    except (ObjectNotFound, IsADirectoryError, NotADirectoryError, FileNotFoundError) as e:
        raise ImageError("image_not_found", f"image_key {_shown(image_key)} is not an object") from e
    except (StorageError, OSError, ValueError) as e:
        raise ImageError(
            "invalid_image_key", f"image_key {_shown(image_key)} cannot be read: {_reason(e)}"
        ) from e


def image_key_source(
    storage: Storage, tenant_id: str, image_key: str, max_pixels: int = DEFAULT_MAX_PIXELS
) -> ImageSource:
    """An image in the tenant's storage area: read once to check it, read again when its batch needs it."""
    return probe(lambda: read_image_key(storage, tenant_id, image_key), max_pixels)


def load_image_key(
    storage: Storage, tenant_id: str, image_key: str, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    return image_key_source(storage, tenant_id, image_key, max_pixels).decode()


def processor_fit(processor: Any) -> tuple[int, int] | None:
    """The (width, height) an image processor resizes to, as far as its `size` says (None: unknown)."""
    size = getattr(processor, "size", None) or {}
    get = size.get if isinstance(size, dict) else lambda name: getattr(size, name, None)
    width, height = get("width"), get("height")
    if width and height:
        return int(width), int(height)
    edge = get("shortest_edge") or get("longest_edge")
    return (int(edge), int(edge)) if edge else None


def model_image(value: Image.Image | ImageSource, fit: tuple[int, int] | None) -> Image.Image:
    """A batch's image for the model: a source decoded (and shrunk towards `fit`) now. A source that
    fails to decode keeps its error (`ImageSource.error`) and stands in as a blank image."""
    if isinstance(value, Image.Image):
        return value
    try:
        return value.decode(fit)
    except ImageError as e:
        log.info("an image failed to decode after its header passed: %s", e.code)
        value.error = e
        return Image.new("RGB", fit or (1, 1))
