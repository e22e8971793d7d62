"""The spool: sealed batches on disk before they are sent, so a producer that
crashes resumes exactly where it was. The format is shared with the C
library (docs/clients.md, "Spool file format"):

    header   "SLOTDSP1"
    record   u32 len | u32 crc | u8 type | payload      (little endian)
             len = bytes of type + payload; crc = zlib.crc32(type + payload)
      1 BATCH  u64 seq | u64 sealed | u32 ntrades | u8 kind_len | kind | msgpack trades array
      2 ACKED  u64 seq                 every batch with seq <= this is done
      3 STATE  u64 seq | u64 sealed    first record after a compaction

Locking: fcntl.flock(LOCK_EX | LOCK_NB) on the file itself, as the C library
does, so either library's sender excludes the other's. A compaction writes a
new file, locks it and renames it over the path, so the path always names a
locked file; an opener that locked the old file after the rename sees that
its file is no longer the one at the path and opens again.
"""
import errno
import fcntl
import os
import struct
import zlib

from .errors import SpoolError, SpoolLocked

MAGIC = b"SLOTDSP1"
BATCH, ACKED, STATE = 1, 2, 3
_HDR = struct.Struct("<IIB")            # len, crc, type
_FIXED = struct.Struct("<QQIB")          # seq, sealed, ntrades, kind_len
_U64 = struct.Struct("<Q")
_STATE = struct.Struct("<QQ")
COMPACT_BYTES = 1 << 20                  # compact an all-acknowledged spool past this size


class SpooledBatch:
    __slots__ = ("seq", "sealed", "ntrades", "kind", "body")

    def __init__(self, seq, sealed, ntrades, kind, body):
        self.seq, self.sealed, self.ntrades, self.kind, self.body = seq, sealed, ntrades, kind, body


def _record(rtype, *parts):
    payload = bytes([rtype]) + b"".join(parts)
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


class Spool:
    """One open, locked spool. After open(): last_seq (the last sealed seq),
    sealed (trades sealed so far), history (a BATCH or STATE was read: the
    seqs continue the spool's), pending (SpooledBatch list, seq order, not
    known to be acknowledged)."""

    def __init__(self, path, sync=True):
        self.path = os.fspath(path)
        self.sync = sync
        self.fd = -1
        self.size = 0
        self.last_seq = 0
        self.sealed = 0
        self.acked = 0
        self.history = False
        self.pending = []
        self._open_locked()
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    # -- opening -------------------------------------------------------
    def _fail(self, what, cls=SpoolError):
        raise cls("spool %s: %s" % (self.path, what))

    def _open_locked(self):
        for _ in range(100):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            except OSError as e:
                self._fail(e.strerror)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    self._fail("locked by another sender", SpoolLocked)
                self._fail(e.strerror)
            a = os.fstat(fd)
            try:
                b = os.stat(self.path)
            except OSError:
                b = None
            if b is not None and (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev):
                self.fd = fd
                return
            os.close(fd)  # a compaction replaced the file meanwhile: open the new one
        self._fail("keeps being replaced")

    def _load(self):
        size = os.fstat(self.fd).st_size
        data = os.pread(self.fd, size, 0) if size else b""
        if len(data) < 8:
            # New, or a header torn while being created.
            if MAGIC[:len(data)] != data:
                self._fail("not a spool (bad header at offset 0)")
            os.ftruncate(self.fd, 0)
            self._write(MAGIC)
            os.fsync(self.fd)
            self.size = 8
            return
        if data[:8] != MAGIC:
            self._fail("not a spool (bad header at offset 0)")
        end, batches = self._scan(data)
        if end < len(data):
            # The torn tail a crash left: cut at the last whole record.
            try:
                os.ftruncate(self.fd, end)
                os.fsync(self.fd)
            except OSError as e:
                self._fail("cannot cut the torn tail at offset %d: %s" % (end, e.strerror))
        self.size = end
        self.pending = [b for b in batches if b.seq > self.acked]

    def _scan(self, data):
        """Whole records from offset 8: (where they end, BATCH records). A
        torn tail ends the scan; damage anywhere else is refused."""
        off, size, batches = 8, len(data), []
        mv = memoryview(data)
        while off < size:
            left = size - off
            if left < _HDR.size:
                break                                   # a header cut short
            length, crc = struct.unpack_from("<II", data, off)
            if length == 0:
                if not any(mv[off:]):
                    break                               # zeros a crash left behind
                self._fail("record of length 0 at offset %d" % off)
            if 8 + length > left:
                break                                   # the last write was torn
            rec = mv[off + 8:off + 8 + length]
            if zlib.crc32(rec) != crc:
                if off + 8 + length == size:
                    break                               # the last record, torn
                self._fail("bad checksum at offset %d" % off)
            rtype = rec[0]
            if rtype == ACKED and length == 9:
                self.acked = max(self.acked, _U64.unpack_from(rec, 1)[0])
            elif rtype == STATE and length == 17:
                self.last_seq, self.sealed = _STATE.unpack_from(rec, 1)
                self.history = True
            elif rtype == BATCH and length >= 1 + _FIXED.size and length >= 1 + _FIXED.size + rec[21]:
                seq, sealed, ntrades, klen = _FIXED.unpack_from(rec, 1)
                k0 = 1 + _FIXED.size
                kind = bytes(rec[k0:k0 + klen]).decode("utf-8", "replace")
                batches.append(SpooledBatch(seq, sealed, ntrades, kind, bytes(rec[k0 + klen:])))
                self.last_seq, self.sealed = seq, sealed
                self.history = True
            else:
                self._fail("unknown record (type %d, length %d) at offset %d" % (rtype, length, off))
            off += 8 + length
        return off, batches

    # -- writing -------------------------------------------------------
    def _write(self, data):
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def append_batch(self, seq, sealed, ntrades, kind, body):
        """Appends a sealed batch (synced if sync): call before sending it."""
        k = kind.encode()
        try:
            self._write(_record(BATCH, _FIXED.pack(seq, sealed, ntrades, len(k)), k, body))
            if self.sync:
                os.fdatasync(self.fd)
        except OSError as e:
            self._fail("cannot append batch %d: %s" % (seq, e.strerror))
        self.size += 9 + _FIXED.size + len(k) + len(body)
        self.last_seq, self.sealed, self.history = seq, sealed, True

    def ack(self, seq):
        """Records that every batch up to seq is done. Not synced: a lost
        ACKED only makes a restart resend a stored batch, which the server
        acknowledges without storing it again (PROTOCOL.md 5.1 rule 1)."""
        if seq <= self.acked:
            return
        try:
            self._write(_record(ACKED, _U64.pack(seq)))
        except OSError as e:
            self._fail("cannot record ACK %d: %s" % (seq, e.strerror))
        self.size += 17
        self.acked = seq

    def compact(self):
        """Everything is acknowledged: replace the file by its STATE alone."""
        tmp = self.path + ".tmp"
        fd = -1
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            data = MAGIC + _record(STATE, _STATE.pack(self.last_seq, self.sealed))
            os.write(fd, data)
            # Durable before it replaces the old file: the STATE is all that
            # keeps the next seq and `sealed` once the batches are gone.
            os.fsync(fd)
            os.rename(tmp, self.path)
            dfd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            if fd >= 0:
                os.close(fd)
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            self._fail("cannot compact: %s" % e.strerror)
        os.close(self.fd)
        self.fd = fd
        self.size = len(data)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)  # releases the lock
            self.fd = -1
