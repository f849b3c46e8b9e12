"""Fetch a dataset's files from its publisher: only ever called with ``download=True``.

Each file is streamed to a temporary name beside its destination, checked against the
publisher's MD5, and renamed into place, so an interrupted download leaves nothing that
looks complete. Archives are unpacked member by member (regular files only, base names
only), never with ``extractall``.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from benchtool.errors import UsageError

CHUNK = 1 << 20
TIMEOUT_S = 60


@dataclass(frozen=True)
class RemoteFile:
    """A file as its publisher serves it; ``members`` are the files to take out of an archive."""

    name: str
    urls: tuple[str, ...]
    md5: str
    members: tuple[str, ...] = ()


def _stream_to(url: str, target: Path) -> str:
    """Download ``url`` into ``target``; return the MD5 of what arrived."""
    digest = hashlib.md5(usedforsecurity=False)
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(target, "wb") as out:  # noqa: S310
        while chunk := response.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def fetch(remote: RemoteFile, folder: Path) -> Path:
    """Download ``remote`` into ``folder`` (trying each mirror), verified by MD5."""
    folder.mkdir(parents=True, exist_ok=True)
    destination = folder / remote.name
    errors = []
    for url in remote.urls:
        print(f"benchtool: downloading {url} -> {destination}", file=sys.stderr)
        fd, temp_name = tempfile.mkstemp(prefix=f".{remote.name}.", suffix=".part", dir=folder)
        os.close(fd)
        temp = Path(temp_name)
        try:
            md5 = _stream_to(url, temp)
            if md5 != remote.md5:
                errors.append(f"{url}: MD5 {md5}, expected {remote.md5}")
                continue
            os.replace(temp, destination)
            return destination
        except OSError as exc:
            errors.append(f"{url}: {exc}")
        finally:
            temp.unlink(missing_ok=True)
    raise UsageError(f"could not download {remote.name}: " + "; ".join(errors))


def unpack(archive: Path, members: tuple[str, ...], folder: Path) -> None:
    """Copy the named regular-file members of a ``.tar.gz`` into ``folder`` by base name."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = set(members)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.name not in wanted or not member.isfile():
                continue
            source = tar.extractfile(member)
            if source is None:
                continue
            target = folder / Path(member.name).name
            with source, open(target.with_suffix(target.suffix + ".part"), "wb") as out:
                while chunk := source.read(CHUNK):
                    out.write(chunk)
            os.replace(target.with_suffix(target.suffix + ".part"), target)
            wanted.discard(member.name)
    if wanted:
        raise UsageError(f"{archive}: archive lacks {sorted(wanted)}")


def fetch_all(remotes: tuple[RemoteFile, ...], folder: Path) -> None:
    """Download every remote file not yet in ``folder``, unpacking archives and removing them after."""
    for remote in remotes:
        wanted = [Path(m).name for m in remote.members] or [remote.name]
        if all((folder / name).is_file() for name in wanted):
            continue
        path = fetch(remote, folder)
        if remote.members:
            unpack(path, remote.members, folder)
            path.unlink()
