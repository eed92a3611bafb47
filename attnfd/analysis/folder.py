"""A folder on any file system pyarrow has: a local path, or a URI (``s3://``, ``gs://``, ``file://``, ...).

The analysis reads a study where it lives through ``pyarrow.fs``, the layer the study side
writes through, so a study in a bucket needs no copy first. A URI's query carries the file
system's options (``s3://bucket/studies?endpoint_override=http://host:9000&region=eu-west-1``);
credentials come from where pyarrow looks for them (the environment, the cloud's config files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def one_line(err: BaseException) -> str:
    """An error of pyarrow or of a cloud SDK as one line (some span several)."""
    return " ".join(str(err).split())


def is_uri(where: str | os.PathLike) -> bool:
    return "://" in os.fspath(where)


def shown(where: str | os.PathLike) -> str:
    """A folder or URI as a message names it: without the URI's query, which may hold a secret key."""
    text = os.fspath(where)
    return text.split("?", 1)[0] if is_uri(text) else text


@dataclass(frozen=True)
class Folder:
    fs: pafs.FileSystem
    path: str
    # a URI's scheme ("" on the local file system), to name the folder as the reader gave it
    scheme: str = ""

    @classmethod
    def at(cls, where: str | os.PathLike) -> Folder:
        """Raises ``ValueError`` (pyarrow's ArrowInvalid) for a URI pyarrow cannot parse and
        ``OSError`` for a file system it cannot set up."""
        text = os.fspath(where)
        if not is_uri(text):
            return cls(pafs.LocalFileSystem(), str(Path(text).expanduser().absolute()))
        fs, path = pafs.FileSystem.from_uri(text)
        if isinstance(fs, pafs.LocalFileSystem):
            return cls(fs, path)
        return cls(fs, path.rstrip("/"), text.split("://", 1)[0])

    def __str__(self) -> str:
        return f"{self.scheme}://{self.path}" if self.scheme else self.path

    def __truediv__(self, name: str) -> Folder:
        return Folder(self.fs, f"{self.path.rstrip('/')}/{name}" if self.path else name, self.scheme)

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> Folder:
        return Folder(self.fs, self.path.rstrip("/").rsplit("/", 1)[0], self.scheme)

    @property
    def local(self) -> Path | None:
        """The folder as a local path, None when it lives elsewhere."""
        return Path(self.path) if isinstance(self.fs, pafs.LocalFileSystem) else None

    def _type(self) -> pafs.FileType:
        return self.fs.get_file_info(self.path).type

    def is_dir(self) -> bool:
        return self._type() == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self._type() == pafs.FileType.File

    def _entries(self) -> list[pafs.FileInfo]:
        return self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))

    def folders(self) -> list[Folder]:
        return [Folder(self.fs, i.path, self.scheme) for i in self._entries() if i.type == pafs.FileType.Directory]

    def files(self, suffix: str) -> list[Folder]:
        """The files directly inside whose names end with ``suffix``, by name."""
        found = [i.path for i in self._entries() if i.type == pafs.FileType.File and i.path.endswith(suffix)]
        return [Folder(self.fs, p, self.scheme) for p in sorted(found)]

    def mtime(self) -> float:
        when = self.fs.get_file_info(self.path).mtime
        return when.timestamp() if isinstance(when, datetime) else 0.0

    def read_text(self) -> str:
        with self.fs.open_input_stream(self.path) as stream:
            return stream.read().decode("utf-8", errors="replace")

    def read_parquet(self) -> pa.Table:
        return pq.read_table(self.path, filesystem=self.fs)
