"""Scan a model folder for code its files would run when loaded — without loading anything.

Formats are told apart by content, never by extension: a pickle renamed ``model.bin`` is
still a pickle. Every pickle stream is walked opcode by opcode and its globals judged by an
allow-list (:mod:`corral.security._pickles`); archives are checked for escaping names, links
and bombs, then each entry is scanned the same way; ``.npy`` object arrays, joblib files and
PyTorch zips are pickles inside and are scanned as such; ONNX external data must stay inside
the folder; Keras ``Lambda`` layers are code. Anything that cannot be parsed is unsafe.

A format the scanner does not know is ``unknown``: unsafe with ``strict``, otherwise unsafe
only when it carries pickle markers (an embedded pickle stream), so weights in a format that
is plain numbers do not block registration.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import zlib
from pathlib import Path
from typing import BinaryIO

from corral.errors import InvalidArgument
from corral.security._archives import keras_markers, scan_zip
from corral.security._external import PICKLE_BEARING, picklescan_opinion
from corral.security._formats import (
    DATA_FORMATS,
    PICKLE_MARKER,
    detect,
    is_text,
    looks_like_protocol0,
    starts_with_global,
    walks_like_onnx,
)
from corral.security._pickles import PickleScan, scan_pickle_stream
from corral.security._report import Finding, ScanLimits, ScanReport, Verdict, make_report

__all__ = ["scan_file", "scan_folder"]

_HEAD = 64
_CHUNK = 1024**2


def scan_folder(
    folder: Path,
    *,
    strict: bool = False,
    limits: ScanLimits | None = None,
    second_opinion: bool = False,
) -> ScanReport:
    """Scan every file under ``folder``; a symbolic link anywhere makes the folder unsafe.

    Args:
        strict: files of an unknown format count as unsafe.
        second_opinion: also run picklescan, when installed, on files that hold pickles.
    """
    limits = limits or ScanLimits()
    root = Path(folder)
    if root.is_symlink() or not root.is_dir():
        raise InvalidArgument(f"cannot scan {folder}: it is not a folder (or it is a link)")
    findings: list[Finding] = []

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename).relative_to(root).as_posix() if exc.filename else "."
        reason = f"cannot be listed: {exc.strerror}"
        findings.append(Finding(where, "folder", Verdict.UNSAFE, (reason,)))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=False):
        for name in sorted([*dirnames, *filenames]):
            path = Path(dirpath) / name
            relative = path.relative_to(root).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                findings.append(
                    Finding(relative, "symlink", Verdict.UNSAFE, ("is a symbolic link",))
                )
            elif stat.S_ISREG(mode):
                found = _scan_path(path, relative, root, limits)
                findings.extend(found)
                if second_opinion and found and found[0].format in PICKLE_BEARING:
                    opinion = picklescan_opinion(path, relative)
                    if opinion is not None:
                        findings.append(opinion)
            elif not stat.S_ISDIR(mode):
                findings.append(
                    Finding(relative, "special", Verdict.UNSAFE, ("is not a regular file",))
                )
        dirnames.sort()
    return make_report(findings, strict)


def scan_file(path: Path, *, strict: bool = False, limits: ScanLimits | None = None) -> ScanReport:
    """Scan one file (ONNX external data is looked for beside it)."""
    path = Path(path)
    if path.is_symlink():
        finding = Finding(path.name, "symlink", Verdict.UNSAFE, ("is a symbolic link",))
        return make_report([finding], strict)
    return make_report(_scan_path(path, path.name, path.parent, limits or ScanLimits()), strict)


def _scan_path(path: Path, label: str, root: Path, limits: ScanLimits) -> list[Finding]:
    try:
        with path.open("rb") as fh:
            return _Scanner(root, limits).scan(fh, label, depth=0)
    except OSError as exc:
        return [Finding(label, "unreadable", Verdict.UNSAFE, (f"cannot be read: {exc}",))]


class _Scanner:
    def __init__(self, root: Path, limits: ScanLimits) -> None:
        self.root = root
        self.limits = limits

    def scan(self, fh: BinaryIO, label: str, depth: int) -> list[Finding]:
        if depth > self.limits.max_depth:
            reason = f"nests archives deeper than the limit {self.limits.max_depth}"
            return [Finding(label, "nested", Verdict.UNSAFE, (reason,))]
        head = fh.read(_HEAD)
        fh.seek(0)
        kind = detect(head)
        if kind == "pickle":
            return [self._pickle(fh, label, "pickle")]
        if kind == "zip":
            return scan_zip(fh, label, depth, self.limits, self.scan)
        if kind in ("gzip", "zlib", "bz2", "xz", "joblib-zf"):
            return self._compressed(fh, label, kind, depth)
        if kind == "npy":
            return [self._npy(fh, label)]
        if kind == "hdf5":
            return [self._hdf5(fh, label)]
        if kind == "protobuf" and not walks_like_onnx(fh.read(_CHUNK), _size(fh)):
            kind = "binary"  # opaque bytes that start like one: not read whole
        fh.seek(0)
        if kind == "protobuf":
            from corral.security._onnx import scan_onnx

            found = scan_onnx(fh.read(), label, self.root)
            if found is not None:
                return [found]
            fh.seek(0)
            return [self._unknown(fh, label)]
        if kind == "text":
            return [self._text(fh, label)]
        if kind in DATA_FORMATS:
            return [Finding(label, kind, Verdict.SAFE)]
        # Protocol 0 and 1 pickles have no header: try the bytes as one.
        found = self._pickle(fh, label, "pickle")
        if found.verdict is Verdict.SAFE or starts_with_global(head):
            return [found]
        fh.seek(0)
        return [self._unknown(fh, label)]

    def _pickle(self, fh: BinaryIO, label: str, kind: str) -> Finding:
        """Every pickle stream in the file, back to back, up to its end."""
        scan = PickleScan()
        try:
            while True:
                scan_pickle_stream(fh, scan)
                if not fh.read(1):
                    break
                fh.seek(-1, 1)
        except ValueError as exc:
            scan.flag(f"cannot be parsed as a pickle (stream {scan.streams}): {exc}")
        verdict = Verdict.UNSAFE if scan.reasons else Verdict.SAFE
        return Finding(label, kind, verdict, tuple(scan.reasons))

    def _compressed(self, fh: BinaryIO, label: str, kind: str, depth: int) -> list[Finding]:
        if kind == "joblib-zf":
            # 'ZF0x' then the length as hex and a space, then a zlib stream.
            raw = fh.read(self.limits.max_uncompressed_bytes)
            start = raw.find(b"x", 4)
            fh = io.BytesIO(raw[start:] if start > 0 else b"")
            kind = "zlib"
        limit = self.limits.max_uncompressed_bytes
        try:
            data = _decompress(fh, kind, limit + 1)
        except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
            return [Finding(label, kind, Verdict.UNSAFE, (f"cannot be decompressed: {exc}",))]
        if len(data) > limit:
            reason = f"expands to more than {limit} bytes: a decompression bomb"
            return [Finding(label, kind, Verdict.UNSAFE, (reason,))]
        inner = self.scan(io.BytesIO(data), f"{label}!{kind}", depth + 1)
        return [Finding(label, kind, Verdict.SAFE), *inner]

    def _npy(self, fh: BinaryIO, label: str) -> Finding:
        import numpy.lib.format as npformat

        try:
            version = npformat.read_magic(fh)
            if version == (1, 0):
                _, _, dtype = npformat.read_array_header_1_0(fh)
            else:
                _, _, dtype = npformat.read_array_header_2_0(fh)
        except (ValueError, SyntaxError, TypeError) as exc:
            return Finding(label, "npy", Verdict.UNSAFE, (f"cannot be parsed as .npy: {exc}",))
        if not dtype.hasobject:
            return Finding(label, "npy", Verdict.SAFE)
        # An object array is stored as a pickle after the header.
        offset = fh.tell()
        found = self._pickle(fh, label, "npy-object")
        reasons = tuple(f"{r} (object array pickled at byte {offset})" for r in found.reasons)
        return Finding(label, "npy-object", found.verdict, reasons)

    def _hdf5(self, fh: BinaryIO, label: str) -> Finding:
        layers: set[str] = set()
        tail = b""
        while chunk := fh.read(_CHUNK):
            layers.update(keras_markers(tail + chunk))
            tail = chunk[-256:]
        if layers:
            reasons = tuple(
                f"a {n} layer runs Python code stored in the file" for n in sorted(layers)
            )
            return Finding(label, "hdf5", Verdict.UNSAFE, reasons)
        return Finding(label, "hdf5", Verdict.SAFE, ("no Keras Lambda layer in its attributes",))

    def _text(self, fh: BinaryIO, label: str) -> Finding:
        head = fh.read(_CHUNK)
        fh.seek(0)
        if looks_like_protocol0(head):
            found = self._pickle(fh, label, "pickle")
            if found.verdict is Verdict.SAFE or starts_with_global(head):
                return found  # a protocol 0 pickle: clean, or naming a global and broken
        kind = "json" if head.lstrip()[:1] in (b"{", b"[") else "text"
        if not is_text(head):
            return self._unknown(fh, label)
        return Finding(label, kind, Verdict.SAFE)

    def _unknown(self, fh: BinaryIO, label: str) -> Finding:
        tail = b""
        offset = 0
        size = _size(fh)
        while chunk := fh.read(_CHUNK):
            window = tail + chunk
            for match in PICKLE_MARKER.finditer(window):
                at = offset - len(tail) + match.start()
                if not _plausible_frame(window, match.start(), size - at):
                    continue  # chance bytes in weights: a frame longer than the file
                reason = f"unknown format with an embedded pickle stream at byte {at}"
                return Finding(label, "binary", Verdict.UNSAFE, (reason,))
            tail = chunk[-64:]
            offset += len(chunk)
        return Finding(label, "binary", Verdict.UNKNOWN, ("format not recognised",))


def _size(fh: BinaryIO) -> int:
    """The size of a file on disk; 1 TiB for a stream (a zip member, decompressed data)."""
    try:
        return os.fstat(fh.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return 1 << 40


def _plausible_frame(window: bytes, start: int, remaining: int) -> bool:
    """Whether a framed PROTO marker announces a frame that fits in the rest of the file.

    A real protocol 4/5 pickle opens with PROTO, FRAME and an 8-byte frame length; in
    random-looking bytes (weights) the same three bytes turn up by chance, but then the
    length that follows is almost never smaller than the file. Unframed markers (a
    GLOBAL line) are specific enough on their own.
    """
    if window[start + 2 : start + 3] != b"\x95":
        return True
    length = window[start + 3 : start + 11]
    if len(length) < 8:
        return True  # cut by the end of the read: be safe
    return int.from_bytes(length, "little") <= remaining


def _decompress(fh: BinaryIO, kind: str, limit: int) -> bytes:
    """At most ``limit`` bytes of a compressed stream."""
    if kind == "zlib":
        return _ZlibReader(fh).read(limit)
    if kind == "gzip":
        with gzip.GzipFile(fileobj=fh) as opened:
            return opened.read(limit)
    if kind == "bz2":
        with bz2.BZ2File(fh) as bz2_opened:
            return bz2_opened.read(limit)
    with lzma.LZMAFile(fh) as lzma_opened:
        return lzma_opened.read(limit)


class _ZlibReader:
    """``read(n)`` over a zlib stream, never inflating more than ``n`` bytes."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.inflate = zlib.decompressobj()

    def read(self, limit: int) -> bytes:
        out = bytearray()
        pending = b""
        while len(out) < limit:
            if pending:
                chunk = pending
            else:
                chunk = self.fh.read(_CHUNK)
                if not chunk:
                    break
            out += self.inflate.decompress(chunk, limit - len(out))
            pending = self.inflate.unconsumed_tail
            if self.inflate.eof:
                break
        if not self.inflate.eof and len(out) < limit:
            raise EOFError("the zlib stream is truncated")
        return bytes(out)
