"""The intact messages of a damaged rosbag2 file: an mcap cut short, a sqlite3 with a bad tail.

A recording killed mid-write leaves an mcap without its summary and footer, and
often a last chunk cut in half; a sqlite3 file whose last pages are missing.
rosbags refuses both as a whole (it reads an mcap's summary first, and sqlite
refuses a file shorter than its header says). Almost every message is intact,
so these readers go front to back and stop where the data stops being valid:

- mcap: record by record from the start, parsed with the ``mcap`` package's
  record classes. Its StreamReader cannot be used as it is: it gives up at the
  cut (EndOfFile) without the messages of a partly written last chunk, and it
  returns short reads silently, so a cut message could come out truncated.
  Here a record is used only when all of its bytes are there; a cut last
  chunk is decompressed as far as it goes (none, zstd or lz4) and its complete
  messages are kept; a chunk whose CRC is wrong ends the readable part.
- sqlite3: a copy of the file whose header states the pages that are really
  there; then the messages are read one row at a time in id (= write) order,
  up to the first row sqlite reports as damaged.

Each reader states where the bag ended (``Damage``).
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from mcap.data_stream import ReadDataStream
from mcap.opcode import Opcode
from mcap.records import Channel, Message, Schema

MCAP_MAGIC = b"\x89MCAP0\r\n"
RECORD_PREFIX = 9  # opcode (1 byte) and record length (8 bytes)
SQLITE_PAGE_COUNT_OFFSET = 28  # big-endian uint32 in the database header


class DamagedBagError(ValueError):
    """Not even the start of the file can be read."""


@dataclass
class Damage:
    """Where a bag stops being readable."""

    file: str
    reason: str
    offset: int | None = None  # bytes of the file that could be used
    size: int | None = None  # bytes in the file

    def describe(self) -> str:
        where = f" after byte {self.offset} of {self.size}" if self.offset is not None else ""
        return f"{self.file} is damaged{where}: {self.reason}"


@dataclass
class RawMessage:
    """One serialized message of a damaged bag."""

    topic: str
    msgtype: str
    timestamp: int  # ns, the bag's log time
    data: bytes  # CDR


class DamagedBag:
    """The readable messages of a damaged mcap or sqlite3 file, in file order.

    topics: topic -> (message type, readable message count). damage: where the
    file ended, or None when it turned out intact.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.topics: dict[str, tuple[str, int]] = {}
        self.damage: Damage | None = None
        for message in self.messages():
            msgtype, count = self.topics.get(message.topic, (message.msgtype, 0))
            self.topics[message.topic] = (msgtype, count + 1)

    def messages(self, topics: set[str] | None = None) -> Iterator[RawMessage]:
        """The intact messages (of topics only, when given); sets damage as it goes."""
        reader = read_sqlite3 if self.path.suffix == ".db3" else read_mcap
        for message in reader(self.path, self):
            if topics is None or message.topic in topics:
                yield message


def bag_files(path: Path) -> list[Path]:
    """The storage files of a bag path: the file itself or a folder's .mcap / .db3 files."""
    if path.is_file():
        return [path]
    return sorted(path.glob("*.mcap")) + sorted(path.glob("*.db3"))


# ------------------------------------------------------------------ mcap
def _complete_records(data: bytes | memoryview, start: int) -> Iterator[tuple[int, bytes, int]]:
    """(opcode, body, end offset) of each record of data from start whose bytes are all there."""
    position = start
    while position + RECORD_PREFIX <= len(data):
        opcode = data[position]
        (length,) = struct.unpack_from("<Q", data, position + 1)
        end = position + RECORD_PREFIX + length
        if end > len(data):
            return
        yield opcode, bytes(data[position + RECORD_PREFIX : end]), end
        position = end


def _chunk_records(body: bytes, complete: bool) -> tuple[bytes, str | None]:
    """The records section of a chunk body, decompressed; and why it stops early (or None).

    complete: the chunk record is whole (its CRC is checked); otherwise it was cut
    and as much as decompresses is returned.
    """
    stream = ReadDataStream(BytesIO(body))
    stream.read8(), stream.read8()  # message start and end time
    uncompressed_size, crc = stream.read8(), stream.read4()
    compression = stream.read_prefixed_string()
    records_length = stream.read8()
    packed = body[stream.count : stream.count + records_length]
    if compression == "":
        data, problem = packed, None
    elif compression == "zstd":
        import zstandard

        try:
            data = zstandard.ZstdDecompressor().decompressobj().decompress(packed)
            problem = None
        except zstandard.ZstdError as error:
            data, problem = b"", f"zstd chunk does not decompress: {error}"
    elif compression == "lz4":
        import lz4.frame

        try:
            data = lz4.frame.LZ4FrameDecompressor().decompress(packed)
            problem = None
        except RuntimeError as error:
            data, problem = b"", f"lz4 chunk does not decompress: {error}"
    else:
        return b"", f"unknown chunk compression {compression!r}"
    if complete and problem is None and crc and zlib.crc32(data) != crc:
        return b"", "chunk CRC mismatch"
    if complete and problem is None and len(data) != uncompressed_size:
        return b"", f"chunk holds {len(data)} bytes, its header says {uncompressed_size}"
    return data, problem


class _McapIndex:
    """The schemas and channels read so far; turns message records into RawMessages."""

    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.channels: dict[int, tuple[str, int]] = {}  # id -> (topic, schema id)

    def handle(self, opcode: int, body: bytes) -> Iterator[RawMessage]:
        stream = ReadDataStream(BytesIO(body))
        if opcode == Opcode.SCHEMA:
            schema = Schema.read(stream)
            self.schemas[schema.id] = schema.name
        elif opcode == Opcode.CHANNEL:
            channel = Channel.read(stream)
            self.channels[channel.id] = (channel.topic, channel.schema_id)
        elif opcode == Opcode.MESSAGE:
            message = Message.read(stream, len(body))
            if message.channel_id in self.channels:
                topic, schema_id = self.channels[message.channel_id]
                schema = self.schemas.get(schema_id, "")
                yield RawMessage(topic, schema, message.log_time, message.data)


def read_mcap(path: Path, bag: DamagedBag) -> Iterator[RawMessage]:
    """Every complete message of an mcap file, in file order; sets bag.damage."""
    data = path.read_bytes()
    if not data.startswith(MCAP_MAGIC):
        raise DamagedBagError(f"{path} does not start like an mcap file")
    index = _McapIndex()
    bag.damage = None
    used = len(MCAP_MAGIC)
    for opcode, body, end in _complete_records(data, used):
        if opcode == Opcode.FOOTER:
            return
        if opcode == Opcode.CHUNK:
            records, problem = _chunk_records(body, complete=True)
            if problem is not None:
                bag.damage = Damage(str(path), problem, used, len(data))
                return
            for inner_opcode, inner_body, _ in _complete_records(records, 0):
                yield from index.handle(inner_opcode, inner_body)
        else:
            yield from index.handle(opcode, body)
        used = end
    yield from _read_mcap_tail(path, data, used, index, bag)


def _read_mcap_tail(
    path: Path, data: bytes, used: int, index: _McapIndex, bag: DamagedBag
) -> Iterator[RawMessage]:
    """The file ends inside a record: keep what a cut chunk still holds; sets bag.damage."""
    reason = "the file ends inside a record (a recording cut short?)"
    if len(data) > used and data[used] == Opcode.CHUNK and len(data) > used + RECORD_PREFIX:
        try:
            records, _ = _chunk_records(data[used + RECORD_PREFIX :], complete=False)
        except Exception:  # the chunk header itself is cut: nothing in it is usable
            records = b""
        for inner_opcode, inner_body, _ in _complete_records(records, 0):
            yield from index.handle(inner_opcode, inner_body)
        reason = (
            "the file ends inside a chunk (a recording cut short?); its complete messages were read"
        )
    elif len(data) == used:
        reason = "the file ends without a footer (a recording cut short?)"
    bag.damage = Damage(str(path), reason, used, len(data))


# ------------------------------------------------------------------ sqlite3
def _readable_copy(path: Path, directory: Path) -> Path:
    """A copy of a sqlite3 file whose header counts only the pages the file has."""
    copy = directory / path.name
    shutil.copyfile(path, copy)
    with copy.open("r+b") as file:
        header = file.read(100)
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            raise DamagedBagError(f"{path} does not start like a sqlite3 database")
        (page_size,) = struct.unpack_from(">H", header, 16)
        page_size = 65536 if page_size == 1 else page_size
        pages = copy.stat().st_size // page_size
        (stated,) = struct.unpack_from(">I", header, SQLITE_PAGE_COUNT_OFFSET)
        if stated > pages:
            file.seek(SQLITE_PAGE_COUNT_OFFSET)
            file.write(struct.pack(">I", pages))
            file.truncate(pages * page_size)
    return copy


def read_sqlite3(path: Path, bag: DamagedBag) -> Iterator[RawMessage]:
    """Every readable message of a rosbag2 sqlite3 file, in id order; sets bag.damage."""
    bag.damage = None
    size = path.stat().st_size
    with tempfile.TemporaryDirectory(prefix="superglue_ros_bag_") as scratch:
        connection = sqlite3.connect(_readable_copy(path, Path(scratch)))
        try:
            try:
                topics = {
                    topic_id: (name, msgtype)
                    for topic_id, name, msgtype in connection.execute(
                        "SELECT id, name, type FROM topics"
                    )
                }
            except sqlite3.DatabaseError as error:
                raise DamagedBagError(f"{path}: its topic table cannot be read: {error}") from error
            row_id = 0
            columns = "id, topic_id, timestamp, data"
            query = f"SELECT {columns} FROM messages WHERE id > ? ORDER BY id LIMIT 1"
            while True:
                try:
                    row = connection.execute(query, (row_id,)).fetchone()
                except sqlite3.DatabaseError as error:
                    reason = f"the message rows after id {row_id} cannot be read ({error})"
                    bag.damage = Damage(str(path), reason, None, size)
                    return
                if row is None:
                    return
                row_id, topic_id, timestamp, payload = row
                if topic_id in topics:
                    topic, msgtype = topics[topic_id]
                    yield RawMessage(topic, msgtype, int(timestamp), bytes(payload))
        finally:
            connection.close()
