"""Atomic file writes: a reader sees the old file or the whole new one, never a partial one.

`tempfile.mkstemp` creates its file with mode 0600 whatever the umask, and a rename keeps that
mode, so every file written here would be private. Each write therefore gives the temporary file
the mode a plain `open(path, "w")` would have left: the old file's mode when `path` exists,
else 0666 minus the process umask.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile


def _umask() -> int:
    """The process umask. Linux reports it in /proc without changing it; elsewhere it is set and
    restored at once (`os.umask` has no read-only form)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def open_mode(path: str) -> int:
    """The permission bits `open(path, "w")` would give: kept from an existing file, else 0666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _directory_of(path: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Cannot write {path!r}: directory {directory!r} does not exist.")
    return directory


def _naming(err: OSError, path: str, tmp: str) -> OSError | None:
    """`err` again with `path` as its file, where it names the temporary file or no file (a failed
    `write`): a user must learn which file could not be written (e.g. on a full disk). None when
    `err` is fine as it is."""
    if err.filename in (None, tmp) and err.errno is not None:
        return OSError(err.errno, err.strerror or os.strerror(err.errno), path)
    return None


@contextlib.contextmanager
def _through_temporary(path: str, suffix: str = ".tmp"):
    """Yield a temporary path beside `path`, which becomes `path` (by a rename) when the block
    succeeds. On any failure the temporary file is removed and `path` is left as it was; an
    `OSError` (e.g. ENOSPC, a full disk) names `path`."""
    fd, tmp = tempfile.mkstemp(dir=_directory_of(path), prefix=f".{os.path.basename(path)}.", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, open_mode(path))
        os.replace(tmp, path)
    except OSError as err:
        os.unlink(tmp)
        named = _naming(err, path, tmp)
        if named is None:
            raise
        raise named from err
    except BaseException:
        os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same directory and a rename.

    On any failure the temporary file is removed and `path` is left as it was; an `OSError`
    (e.g. ENOSPC, a full disk) names `path`."""
    with _through_temporary(os.fspath(path)) as tmp, os.fdopen(os.open(tmp, os.O_WRONLY | os.O_TRUNC), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_npz_atomic(path: str | os.PathLike, arrays: dict) -> None:
    """`np.savez_compressed` of `arrays`, atomically."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def save_model_atomic(model, path: str | os.PathLike) -> None:
    """`model.save(path)` for a `.keras` or `.h5` file, through a temporary file and a rename."""
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1]
    if suffix not in (".keras", ".h5"):
        raise ValueError(f"save_model_atomic writes .keras or .h5 files, not {path!r}.")
    with _through_temporary(path, suffix) as tmp:
        model.save(tmp)
