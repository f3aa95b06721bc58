"""Images that attack a worker: tiny files that claim (or hold) huge pixel counts, and broken ones."""

from __future__ import annotations

import base64
import io
import os
import struct
import zlib

from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A valid-looking PNG header of `width` x `height` 1-bit pixels whose pixel data is a few zero rows
    (bytes: well under 1 KB): what `Image.open` sees of a decompression bomb without building one."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * ((width + 7) // 8 + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def solid_png(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A real RGB PNG of one colour: a few KB that decode to width x height x 4 bytes in Pillow."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def truncated_png(side: int = 32) -> bytes:
    """A PNG of noise cut in half: its header passes, its pixels do not decode."""
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, "PNG")
    data = buf.getvalue()
    return data[: len(data) // 2]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
