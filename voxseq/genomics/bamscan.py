"""One compiled pass over a BAM: read counts per filter, coordinate order, and binned depth.

The BAM is read as a stream of BGZF blocks. Groups of blocks (about ``PIECE_BYTES`` compressed)
are inflated by a pool of ``threads`` threads (ISA-L, else zlib; both release the GIL), in
order, while a numba kernel (compiled without the GIL) walks the records of the inflated
bytes: for each record it checks the coordinate order, counts it under the first filter that
drops it, and adds the overlap of each aligned block of a passing read with each bin straight
into the bin sums. No per-base array exists: memory is the bin sums (8 bytes per bin of the
genome) plus ``2 * threads`` inflated pieces in flight (:func:`scan_memory_bytes`).

Depth follows ``samtools depth`` (see :mod:`voxseq.genomics.coverage`). A record whose CIGAR
does not fit the BAM record (over 65,535 operations, stored in a ``CG`` tag) is not walked here:
:func:`scan_bam` reports how many there were and the caller falls back to htslib (pysam) for
the depth. CRAM is not read here (see :func:`voxseq.genomics.coverage.compute_coverage`).
"""

from __future__ import annotations

import struct
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

try:  # ISA-L inflates BGZF blocks about twice as fast as zlib, and releases the GIL likewise
    from isal.isal_zlib import crc32, decompress
    from isal.isal_zlib import error as InflateError
except ImportError:  # pragma: no cover - isal is a dependency; zlib gives the same bytes
    from zlib import crc32, decompress
    from zlib import error as InflateError

PIECE_BYTES = 1 << 20  # compressed bytes per inflate task
_MAX_BLOCK = 1 << 16  # BGZF blocks hold at most 64 KiB, compressed or not
_BGZF_HEAD = b"\x1f\x8b\x08\x04"
# state slots of the kernel
_LAST_REF, _LAST_POS, _RECORDS, _BAD, _LONG_CIGAR, _LIBRARY = range(6)


class ScanError(Exception):
    """The stream cannot be decoded (truncated or corrupt); ``records`` were read before."""

    def __init__(self, message: str, records: int):
        super().__init__(message)
        self.records = records


class OrderError(Exception):
    """A record comes before the previous one: ``record`` (1-based), its name and loci."""

    def __init__(self, record: int, name: str, here: tuple[int, int], last: tuple[int, int]):
        super().__init__(f"record {record} out of order")
        self.record, self.name, self.here, self.last = record, name, here, last


@dataclass
class Scan:
    """What one pass found. ``counts`` follows ``bits`` (flag bits, in order of precedence),
    then low MAPQ, then passed; ``library`` counts passing reads placed on a contig (mapped)."""

    records: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    library: int = 0
    long_cigars: int = 0


def scan_memory_bytes(n_bins_total: int, threads: int) -> int:
    """Peak bytes :func:`scan_bam` holds beyond the interpreter: bin sums and pieces in flight."""
    piece = PIECE_BYTES // 4 * 4 * 4 + _MAX_BLOCK  # inflated pieces are ~4x their input
    return 8 * n_bins_total + 2 * (threads + 1) * (piece + PIECE_BYTES)


def _split_blocks(data: bytes) -> tuple[list[tuple[int, int, int]], int]:
    """Complete BGZF blocks at the head of ``data`` as (start, compressed size, total size),
    and the bytes they span."""
    blocks, at = [], 0
    while len(data) - at >= 18:
        if data[at:at + 4] != _BGZF_HEAD:
            raise ScanError(f"no BGZF block header at byte {at} of a piece", 0)
        xlen = struct.unpack_from("<H", data, at + 10)[0]
        extra, bsize, p = data[at + 12:at + 12 + xlen], None, 0
        while p + 4 <= len(extra):
            slen = struct.unpack_from("<H", extra, p + 2)[0]
            if extra[p:p + 2] == b"BC" and slen == 2:
                bsize = struct.unpack_from("<H", extra, p + 4)[0] + 1
            p += 4 + slen
        if bsize is None:
            raise ScanError("a gzip block without the BGZF size field", 0)
        if len(data) - at < bsize:
            break
        blocks.append((at + 12 + xlen, bsize - xlen - 20, at + bsize))
        at += bsize
    return blocks, at


def _inflate(data: bytes, blocks: list[tuple[int, int, int]]) -> bytes:
    out, view = [], memoryview(data)
    for start, size, end in blocks:
        crc, isize = struct.unpack_from("<II", data, end - 8)
        try:
            raw = decompress(view[start:start + size], -15)
        except (InflateError, zlib.error, OSError, ValueError) as exc:
            raise ScanError(f"a BGZF block does not inflate ({exc})", 0) from None
        if len(raw) != isize or crc32(raw) != crc:
            raise ScanError("a BGZF block fails its size or CRC check", 0)
        out.append(raw)
    return b"".join(out)


def _pieces(path: Path, pool: ThreadPoolExecutor, ahead: int):
    """Inflated pieces of the file, in order, ``ahead`` inflating at a time."""
    pending: deque = deque()
    with open(path, "rb") as fh:
        rest = b""
        while True:
            chunk = fh.read(PIECE_BYTES)
            data = rest + chunk
            blocks, used = _split_blocks(data)
            rest = data[used:]
            if blocks:
                pending.append(pool.submit(_inflate, data, blocks))
            if not chunk:
                if rest:
                    raise ScanError("the file ends inside a BGZF block", 0)
                break
            while len(pending) >= ahead:
                yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _header_size(buf: bytes) -> int | None:
    """Bytes of the BAM header at the start of the inflated stream (None: not all there yet)."""
    if len(buf) < 12:
        return None
    if buf[:4] != b"BAM\x01":
        raise ScanError("not a BAM stream (no BAM magic)", 0)
    at = 8 + struct.unpack_from("<i", buf, 4)[0]
    if len(buf) < at + 4:
        return None
    n_ref = struct.unpack_from("<i", buf, at)[0]
    at += 4
    for _ in range(n_ref):
        if len(buf) < at + 4:
            return None
        at += 8 + struct.unpack_from("<i", buf, at)[0]
    return at if len(buf) >= at else None


@numba.njit(cache=True, inline="always")
def _i32(buf, i):
    v = np.int64(buf[i]) | (np.int64(buf[i + 1]) << 8) | (np.int64(buf[i + 2]) << 16) | (
        np.int64(buf[i + 3]) << 24)
    return v - (np.int64(1) << 32) if v >= (np.int64(1) << 31) else v


@numba.njit(cache=True, inline="always")
def _add_block(bins, off, b0, b1, bin_size):
    """Add the bases of [b0, b1) to the bins they overlap."""
    i0, i1 = b0 // bin_size, (b1 - 1) // bin_size
    if i0 == i1:
        bins[off + i0] += b1 - b0
        return
    bins[off + i0] += (i0 + 1) * bin_size - b0
    for i in range(i0 + 1, i1):
        bins[off + i] += bin_size
    bins[off + i1] += b1 - i1 * bin_size


@numba.njit(nogil=True, cache=True)
def _kernel(buf, n, state, n_refs, ref_len, bin_off, bins, bin_size, bits, counts, min_mapq,
            exclude, count_del):  # pragma: no cover - compiled
    """Walk the complete records of ``buf[:n]``; return the bytes consumed (see module doc)."""
    n_bits = len(bits)
    at = 0
    while at + 4 <= n:
        size = _i32(buf, at)
        if at + 4 + size > n:
            break
        r = at + 4
        ref, pos = _i32(buf, r), _i32(buf, r + 4)
        l_name, mapq = np.int64(buf[r + 8]), np.int64(buf[r + 9])
        n_cig = np.int64(buf[r + 12]) | (np.int64(buf[r + 13]) << 8)
        flag = np.int64(buf[r + 14]) | (np.int64(buf[r + 15]) << 8)
        l_seq = _i32(buf, r + 16)
        key = ref if ref >= 0 else n_refs
        if key < state[0] or (key == state[0] and pos < state[1]):
            state[3] = at
            return at
        state[0], state[1] = key, pos
        state[2] += 1
        hit = flag & exclude
        if hit:
            for k in range(n_bits):
                if hit & bits[k]:
                    counts[k] += 1
                    break
            at += 4 + size
            continue
        if mapq < min_mapq:
            counts[n_bits] += 1
            at += 4 + size
            continue
        counts[n_bits + 1] += 1
        if flag & 4 or ref < 0:
            at += 4 + size
            continue
        state[5] += 1
        c = r + 32 + l_name
        if n_cig == 2 and buf[c] & 15 == 4 and (_i32(buf, c) >> 4) == l_seq and \
                buf[c + 4] & 15 == 3:
            state[4] += 1  # the real CIGAR is in a CG tag
            at += 4 + size
            continue
        off, length, p = bin_off[ref], ref_len[ref], pos
        for j in range(n_cig):
            op_len = _i32(buf, c + 4 * j) & 0xFFFFFFFF
            op, ln = op_len & 15, op_len >> 4
            if op == 0 or op == 7 or op == 8 or (op == 2 and count_del):
                b0, b1 = max(p, 0), min(p + ln, length)
                if b1 > b0 and off >= 0:
                    _add_block(bins, off, b0, b1, bin_size)
            if op == 0 or op == 2 or op == 3 or op == 7 or op == 8:
                p += ln
        at += 4 + size
    return at


def scan_bam(path: str | Path, ref_len: np.ndarray, bin_off: np.ndarray, bins: np.ndarray,
             bin_size: int, bits: list[int], min_mapq: int, exclude_flags: int,
             count_deletions: bool = False, threads: int = 1) -> Scan:
    """One pass over ``path``: counts, coordinate order and (when ``bins`` is not empty) depth.

    Parameters
    ----------
    path
        A BAM file (its header's contig ``i`` is ``ref_len[i]`` long).
    ref_len, bin_off
        ``(n_refs,)`` int64: the length of each header contig and the index of its first bin in
        ``bins`` (-1: not binned).
    bins
        ``(n,)`` int64 bin sums, added to in place (length 0: count only).
    bits
        The flag bits of ``exclude_flags`` in order of precedence, for the counts.
    threads
        Inflating threads (the kernel runs beside them, without the GIL).

    Raises
    ------
    ScanError
        The file cannot be decoded (truncated, corrupt, not a BAM).
    OrderError
        A record out of coordinate order (unplaced reads sort after every contig).
    """
    n_refs = len(ref_len)
    bits_a = np.asarray(bits, dtype=np.int64)
    counts = np.zeros(len(bits) + 2, dtype=np.int64)
    state = np.array([-1, -1, 0, -1, 0, 0], dtype=np.int64)
    count_only = len(bins) == 0
    args = (n_refs, np.asarray(ref_len, np.int64), np.asarray(bin_off, np.int64)
            if not count_only else np.full(n_refs, -1, np.int64), bins, max(bin_size, 1), bits_a,
            counts)
    run = _Runner(state, args, min_mapq, exclude_flags, count_deletions, n_refs)
    with ThreadPoolExecutor(max(threads, 1)) as pool:
        try:
            for piece in _pieces(Path(path), pool, 2 * max(threads, 1)):
                run.feed(piece)
        except ScanError as exc:
            raise ScanError(str(exc), int(state[_RECORDS])) from None
    if run.rest or run.header is not None:
        raise ScanError("the stream ends inside a record" if run.header is None
                        else "the stream ends inside the BAM header", int(state[_RECORDS]))
    return Scan(records=int(state[_RECORDS]), counts=counts, library=int(state[_LIBRARY]),
                long_cigars=int(state[_LONG_CIGAR]))


class _Runner:
    """Feeds inflated pieces to the kernel: the BAM header is skipped, and a record split
    between two pieces is stitched from both (the rest of each piece is walked in place)."""

    def __init__(self, state, args, min_mapq, exclude_flags, count_deletions, n_refs):
        self.state, self.args, self.n_refs = state, args, n_refs
        self.tail = (min_mapq, exclude_flags, count_deletions)
        self.header: bytes | None = b""  # None once skipped
        self.rest = b""

    def walk(self, arr: np.ndarray) -> int:
        used = _kernel(arr, len(arr), self.state, *self.args, *self.tail)
        if self.state[_BAD] >= 0:
            raise _order_error(arr, int(self.state[_BAD]), self.state, self.n_refs)
        return used

    def feed(self, piece: bytes) -> None:
        if self.header is not None:
            self.header += piece
            size = _header_size(self.header)
            if size is None:
                return
            piece, self.header = self.header[size:], None
        at = 0
        while self.rest:  # the record begun at the end of the last piece
            have = self.rest + piece[at:at + max(0, 4 - len(self.rest))]
            need = 4 + struct.unpack_from("<i", have)[0] if len(have) >= 4 else 1 << 62
            take = need - len(self.rest)
            if take > len(piece) - at:
                self.rest += piece[at:]
                return
            stitched = self.rest + piece[at:at + take]
            self.rest, at = b"", at + take
            self.walk(np.frombuffer(stitched, dtype=np.uint8))
        arr = np.frombuffer(piece, dtype=np.uint8)[at:]
        self.rest = bytes(arr[self.walk(arr):])


def _order_error(arr: np.ndarray, at: int, state: np.ndarray, n_refs: int) -> OrderError:
    r = at + 4
    ref, pos = struct.unpack_from("<ii", arr, r)
    l_name = int(arr[r + 8])
    name = bytes(arr[r + 32:r + 32 + l_name - 1]).decode(errors="replace")
    return OrderError(int(state[_RECORDS]) + 1, name, (ref if ref >= 0 else n_refs, pos),
                      (int(state[_LAST_REF]), int(state[_LAST_POS])))
