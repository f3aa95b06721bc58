"""Streaming multipart/form-data: an upload flows from the request to storage in small chunks.

Werkzeug's form parser would spool the whole file to a temporary file first; this reader pulls the
body through werkzeug's sans-IO `MultipartDecoder` instead, so the file part can be handed to
`Storage.put_stream` as a file-like object that is read while the client is still sending.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO

from flask import Request
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import (
    NEED_DATA,
    Data,
    Epilogue,
    Event,
    Field,
    File,
    MultipartDecoder,
    Preamble,
)

from inferq.shared.errors import InvalidRequest, TooLarge, UnsupportedMediaType

READ_CHUNK = 64 * 1024
MAX_FIELD_BYTES = 64 * 1024
CALLBACK_BYTES = 1024 * 1024  # what PartStream hands its `on_read` callbacks at a time
MAX_FILENAME_LENGTH = 255
MMAP_THRESHOLD_BYTES = 1024 * 1024
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


@dataclass(frozen=True)
class FormPart:
    name: str
    filename: str | None  # None for a plain form field


class MultipartReader:
    """Pull parts one at a time from a multipart body; the data of each part is read in chunks."""

    def __init__(self, stream: IO[bytes], boundary: bytes) -> None:
        self._stream = stream
        self._decoder = MultipartDecoder(boundary)
        self._in_part = False
        self._finished = False

    @classmethod
    def from_request(cls, request: Request) -> MultipartReader:
        """A reader over the request body; 415 unless it is multipart/form-data with a boundary."""
        mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
        boundary = options.get("boundary", "")
        if mimetype != "multipart/form-data" or not boundary:
            raise UnsupportedMediaType(
                "send the upload as multipart/form-data with a 'file' part and a 'purpose' field",
                code="unsupported_content_type",
            )
        return cls(request.stream, boundary.encode("latin-1"))

    def _event(self) -> Event:
        while True:
            try:
                event = self._decoder.next_event()
            except ValueError as e:
                raise InvalidRequest(f"malformed multipart body: {e}", code="invalid_multipart") from e
            if event is not NEED_DATA:
                return event
            chunk = self._stream.read(READ_CHUNK)
            self._decoder.receive_data(chunk if chunk else None)

    def next_part(self) -> FormPart | None:
        """The next part (skipping what is left of the current one), or None at the end of the body."""
        while self._in_part:
            self.read_chunk()
        while not self._finished:
            event = self._event()
            if isinstance(event, Field):
                self._in_part = True
                return FormPart(name=event.name, filename=None)
            if isinstance(event, File):
                self._in_part = True
                return FormPart(name=event.name, filename=event.filename)
            if isinstance(event, Epilogue):
                self._finished = True
            elif not isinstance(event, Preamble):
                raise InvalidRequest("malformed multipart body", code="invalid_multipart")
        return None

    def read_chunk(self) -> bytes:
        """The next bytes of the current part; b"" once it is over."""
        while self._in_part:
            event = self._event()
            if not isinstance(event, Data):
                raise InvalidRequest("malformed multipart body", code="invalid_multipart")
            if not event.more_data:
                self._in_part = False
            if event.data or not self._in_part:
                return event.data
        return b""

    def read_field(self, name: str) -> str:
        """The whole value of the current (small, text) part."""
        data = bytearray()
        while chunk := self.read_chunk():
            data.extend(chunk)
            if len(data) > MAX_FIELD_BYTES:
                raise InvalidRequest(f"form field {name!r} is too long", field=name, code="invalid_value")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidRequest(f"form field {name!r} is not UTF-8", field=name, code="invalid_value") from e


class PartStream:
    """A read-only, non-seekable file object over the current part, for `Storage.put_stream`.

    It refuses to pass `limit` bytes (413 `file_too_large`) and hands every byte it returns to the
    `on_read` callbacks, in order, exactly once: that is how the upload is scanned while it is stored.
    """

    def __init__(self, reader: MultipartReader, limit: int) -> None:
        self._reader = reader
        self._limit = limit
        self._buffer = bytearray()
        self._eof = False
        self._on_read: list[Callable[[bytes], None]] = []
        self.received = 0

    def on_read(self, callback: Callable[[bytes], None]) -> None:
        self._on_read.append(callback)

    def _pull(self) -> bool:
        if self._eof:
            return False
        chunk = self._reader.read_chunk()
        if not chunk:
            self._eof = True
            return False
        self.received += len(chunk)
        if self.received > self._limit:
            raise TooLarge(
                f"the file is larger than this server accepts ({self._limit} bytes)", code="file_too_large"
            )
        self._buffer.extend(chunk)
        return True

    def peek(self, size: int) -> bytes:
        """Up to `size` bytes from the start, without consuming them (for format detection)."""
        while len(self._buffer) < size and self._pull():
            pass
        return bytes(self._buffer[:size])

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._pull():
                pass
            size = len(self._buffer)
        while len(self._buffer) < size and self._pull():
            pass
        with memoryview(self._buffer) as view:
            data = bytes(view[:size])  # one copy; bytes(self._buffer[:size]) would make two
        del self._buffer[:size]
        # Storage reads 8 MiB at a time; the callbacks (the upload scanner copies, decodes and splits
        # what it is given) get it in CALLBACK_BYTES pieces, so their scratch memory stays small.
        for start in range(0, len(data), CALLBACK_BYTES):
            piece = data[start : start + CALLBACK_BYTES]
            for callback in self._on_read:
                callback(piece)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


def return_large_buffers_to_os(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Have glibc give every allocation of `threshold` bytes or more its own mapping, unmapped on free.

    glibc raises its mmap threshold to the largest block freed so far (up to 32 MiB), so after the first
    upload the 8 MiB pieces storage reads of an upload come from the heap of whichever thread read them,
    and each thread's heap keeps its high-water mark: the API's RSS climbed ~20 MiB with every 100 MiB
    upload (150 to 300 MiB after eight). With a fixed threshold it returns to its baseline after each
    transfer (benchmarks/api_memory.py). For the serving process; True if glibc took it, else a no-op.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))


def clean_filename(filename: str) -> str:
    """The user's file name as metadata: no NUL, control or bidi-override characters, no folders (nor
    `.` / `..`), bounded length, never empty. Storage keys never use it (see `shared.keys`)."""
    name = "".join(ch for ch in filename if ch.isprintable())
    name = PurePosixPath(name.replace("\\", "/")).name.strip()
    if name in (".", ".."):
        name = ""
    return name[-MAX_FILENAME_LENGTH:] or "upload"
