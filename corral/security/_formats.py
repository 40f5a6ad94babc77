"""Formats told apart by their first bytes, and the data formats that hold no code."""

from __future__ import annotations

import re
import struct

__all__ = ["PICKLE_MARKER", "detect", "is_text", "looks_like_protocol0", "starts_with_global"]

_MAGIC: list[tuple[bytes, str]] = [
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),  # an empty zip
    (b"\x93NUMPY", "npy"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF8", "gif"),
    (b"PAR1", "parquet"),
    (b"GGUF", "gguf"),
    (b"ARROW1", "arrow"),
]
# Data formats: read by their libraries as numbers and strings, never as code.
DATA_FORMATS = {"png", "jpeg", "gif", "webp", "parquet", "gguf", "arrow", "safetensors",
                "ubjson", "text", "json", "empty"}  # fmt: skip
# A pickle of protocol 2-5 starts with PROTO; protocol 4-5 then opens a FRAME.
_PROTO = re.compile(rb"\x80[\x02-\x05]")
# An embedded pickle inside unknown bytes: a framed PROTO, or PROTO then a GLOBAL line.
PICKLE_MARKER = re.compile(
    rb"\x80[\x04\x05]\x95|\x80[\x02\x03](?:\(|\]|\}|)c[A-Za-z_][\w.]*\n\w+\n"
)
# zlib headers joblib writes (levels 1-9): CMF 0x78, FLG making the pair divisible by 31.
_ZLIB = {b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda"}
_PROTOCOL0_START = re.compile(rb"\(?(?:c[A-Za-z_][\w.]*\n\w+\n|\(|\]|\}|N\.|I\d|S'|V)")
# A protocol 0 or 1 pickle naming a global first, as exploits do.
_GLOBAL_START = re.compile(rb"[(\]})]?c[A-Za-z_][\w.]*\n\w+\n")


def detect(head: bytes) -> str:
    """The format of a file from its first bytes (64 are plenty), or ``binary``."""
    if not head:
        return "empty"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if _PROTO.match(head):
        return "pickle"
    if head[:2] in _ZLIB:
        return "zlib"
    if head[:3] == b"ZF0":  # joblib < 0.10 compressed files
        return "joblib-zf"
    if _is_safetensors(head):
        return "safetensors"
    if head[:1] == b"{" and head[1:2] in b"iUIlLdDSCTFZN}$#" and not is_text(head):
        return "ubjson"
    if head[:1] == b"\x08" and walks_like_onnx(head):
        return "protobuf"  # ONNX: field 1 (ir_version) as a varint, then ModelProto fields
    if is_text(head):
        return "text"
    return "binary"


def is_text(sample: bytes) -> bool:
    """UTF-8 without NUL bytes (a multi-byte character cut at the end is allowed)."""
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(sample) - 3 and exc.reason == "unexpected end of data"
    return True


def looks_like_protocol0(text: bytes) -> bool:
    """Text that starts the way a protocol 0 or 1 pickle starts."""
    return bool(_PROTOCOL0_START.match(text))


def starts_with_global(data: bytes) -> bool:
    """Bytes that start by naming a global the way a protocol 0 or 1 pickle does."""
    return bool(_GLOBAL_START.match(data))


def _is_safetensors(head: bytes) -> bool:
    if len(head) < 10:
        return False
    (size,) = struct.unpack("<Q", head[:8])
    return 0 < size < 100 * 1024**2 and head[8:10] in (b'{"', b"{}")


# ModelProto's fields and their wire types (0 varint, 2 length-delimited): ir_version,
# producer_name, producer_version, domain, model_version, doc_string, graph, opset_import,
# metadata_props, training_info, functions, configuration.
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 21: 2, 25: 2}
_PROTOBUF_LIMIT = 2**31  # no protobuf message is longer


def _varint(data: bytes, at: int) -> tuple[int, int] | None:
    """The varint at ``at`` and the offset after it; None if cut off or over 10 bytes."""
    value = 0
    for shift, index in enumerate(range(at, min(at + 10, len(data)))):
        value |= (data[index] & 0x7F) << (7 * shift)
        if data[index] < 0x80:
            return value, index + 1
    return None


def walks_like_onnx(head: bytes, size: int = _PROTOBUF_LIMIT) -> bool:
    """Whether the first bytes of a ``size``-byte file read as ONNX ModelProto fields.

    Reading an ONNX model means reading all of it, so chance bytes (opaque weights whose
    first byte is 0x08) must not be taken for one: random data fails this within a field or
    two, each having about 12 tags in 256 that fit.
    """
    at = 0
    while at < len(head):
        tag = _varint(head, at)
        if tag is None:
            return True  # cut off by the end of the head: nothing wrong so far
        field, wire = tag[0] >> 3, tag[0] & 7
        if _ONNX_FIELDS.get(field) != wire:
            return False
        value = _varint(head, tag[1])
        if value is None:
            return True
        at = value[1] + (value[0] if wire == 2 else 0)
        if at > size:
            return False  # a field running past the end of the file
    return True
