"""Atomic file writes, shared by every report writer."""

import errno
import os
import stat
import tempfile
from pathlib import Path


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` as UTF-8 so that readers see the old file or the new one.

    The temporary file lives in the target's own folder, because a rename is
    only atomic within one file system. Any OSError names the target.
    """
    target = Path(path)
    refuse_non_regular(target)
    try:
        _write_and_rename(target, text)
    except OSError as error:
        # The temporary file's write fails without a file name (ENOSPC, EFBIG);
        # the user needs the path they asked for.
        raise OSError(error.errno, error.strerror or str(error), str(target)) from None


def refuse_non_regular(target: Path) -> None:
    """Raise unless `target` is a regular file or does not exist.

    A rename over a device, FIFO or socket would replace it with a regular
    file: run as root, `--output /dev/null` once replaced /dev/null itself.
    Writing straight into such a target was the other choice; it is refused
    instead, because a FIFO with no reader blocks the run forever and a
    device gains nothing from an atomic report. The command line checks this
    up front (exit 2); this check guards every other caller.
    """
    try:
        mode = os.stat(target).st_mode  # follows symlinks, as a write would
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder", str(target))
    if not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, "not a regular file", str(target))


def _write_and_rename(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
