"""Files: how llmcore writes them without destroying anything it was not asked to replace.

Every file llmcore writes goes through this module. The promise is "bad input loses
nothing", and writing is where data gets lost: a crash half-way through, a device
node or FIFO at the output path (`compress ... /dev/null` run as root would replace
the machine's /dev/null), a symlink planted in an output folder that points at
someone else's file, a guessable temporary name, a shipped run inside the installed
package, two processes training into one folder.

## Writing

    atomic_write(path, data)     a whole file: temporary file in the same folder, fsync, rename
    append_line(path, line)      one JSON line added to a log (metrics.jsonl, timeline.jsonl)
    check_output_path(path)      what both check first: absent or a regular file, nowhere forbidden
    check_output_folder(folder)  the same for a folder a command fills (a run, an HF export)
    lock_folder(folder)          one process at a time trains (or writes an SAE) in a run folder
    remove_stale_temps(folder)   the temporary folders a killed process left behind

A whole-file write never touches the destination until the new bytes are on disk:

    1. refuse an output that is not a regular file (device, FIFO, socket, folder) or is a
       symlink, or lies inside the installed package: before a single byte is written
    2. make a private folder `.{name}.{random}.llmcore-tmp/` beside it (mkdir is exclusive,
       mode 0700): an unpredictable name nobody can plant a symlink at, and no one else
       can enter; create the new file inside it with O_CREAT|O_EXCL|O_NOFOLLOW
    3. write, fsync, then rename the file over the destination (atomic on POSIX: same
       filesystem), remove the private folder and fsync the destination's folder so the
       rename itself survives a power cut. A crash at any point leaves the old file (or
       none), never half a new one; its leftover folder is removed by `remove_stale_temps`.

A symlink at the destination is refused rather than followed or replaced: following it
would write wherever it points (the planted-symlink attack), replacing it would
surprise whoever made it. The user is told to give the real path instead.

## Reading

    check_input(path, what)          a regular file we may read: its os.stat_result, or a one-line UserError
    open_input(path, what)           the same, opened: (binary file object, os.stat_result)
    read_bytes(path, what, limit)    the whole file, refused before reading if larger than `limit`
    read_text(path, what, limit)     the same, as UTF-8 text

Every input path can be something other than a plain file: a folder, a FIFO (opening
it waits forever for a writer), /dev/zero (never ends), a symlink loop, a symlink to
nothing, a file without read permission. Each gets one line naming the path and what
is wrong. The file is opened with O_NONBLOCK (so a FIFO never blocks the open) and
its type is checked on the open descriptor with fstat (so a file swapped for a FIFO
between a check and the open is still caught); its size is checked against the limit
before a single byte is read, and the read stops at the limit anyway (a file that
grows while we read it).
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from pathlib import Path

from llmcore.errors import UserError, describe_os_error

# --- writing ----------------------------------------------------------------------------

TEMP_SUFFIX = ".llmcore-tmp"  # every temporary folder is named `.{name}.{12 hex}.llmcore-tmp`
LOCK_FILE = ".llmcore.lock"  # in a run folder, held (flock) by the process writing there
PACKAGE = Path(__file__).resolve().parent  # the installed llmcore: shipped runs live in assets/
# scripts/build_assets.py sets this to rebuild the shipped runs; nothing else may write there.
ALLOW_PACKAGE_WRITES = False
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # open() fails on a symlink instead of following it

_KINDS = {  # what an output path that is not a regular file is, in words
    stat.S_IFDIR: "a folder",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
}


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:200]


def _refuse_package(path: Path) -> None:
    """Refuse a path inside the installed llmcore package (its shipped runs are read-only)."""
    if ALLOW_PACKAGE_WRITES:
        return
    real = Path(os.path.realpath(path))  # `runs/x -> llmcore/assets/storyworld` is refused too
    if real == PACKAGE or PACKAGE in real.parents:
        run = real.parent if real.parent.parent.name == "assets" else real
        raise UserError(
            f"{path} is inside the installed llmcore package, whose shipped runs are read-only; "
            f"write to a folder of your own instead (e.g. copy the run first: cp -r {run} my-run)"
        )


def check_output_path(path) -> Path:
    """Refuse, before anything is written, an output path llmcore must not replace.

    Allowed: nothing there yet, or a regular file (it will be replaced). Refused: a
    symlink, a folder, a device, a FIFO, a socket, a missing parent folder, and any
    path inside the installed package. Returns the path.
    """
    path = Path(path)
    _refuse_package(path)
    try:
        st = os.lstat(path)  # lstat: look at the name itself, never through a symlink
    except FileNotFoundError:
        if not path.parent.is_dir():
            raise UserError(f"{path}: the folder {path.parent} does not exist; create it first") from None
        return path
    except OSError as e:  # a path component that is a file, a name too long, no permission
        raise UserError(f"cannot write {path}: {e.strerror or _one_line(e)}") from None
    if stat.S_ISLNK(st.st_mode):
        raise UserError(f"{path} is a symbolic link; llmcore does not write through links: "
                        f"give the real path ({os.path.realpath(path)}) or remove the link")
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise UserError(f"{path} is {kind}, not a regular file; llmcore writes only regular files: "
                        f"choose another output path")
    return path


def check_output_folder(folder) -> Path:
    """Refuse a folder a command would fill if it is a symlink, not a folder, or in the package."""
    folder = Path(folder)
    _refuse_package(folder)
    if folder.is_symlink():
        raise UserError(f"{folder} is a symbolic link; give the real folder ({os.path.realpath(folder)})")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} exists and is not a folder; choose a new folder name")
    return folder


def atomic_write(path, data) -> None:
    """Write a whole file: `data` (bytes, str as UTF-8, or `fn(tmp_path)` that writes it).

    A crash mid-write leaves the old file (or none), never half of a new one; see the
    module docstring for the steps. `fn` is for writers that want a file name (safetensors).
    """
    path = check_output_path(path)
    folder = _create_temp_folder(path)
    tmp, fd = folder / path.name, None
    try:
        try:
            # The new file, created exclusively in our private folder (0o666 less the umask).
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | os.O_CLOEXEC, 0o666)
            new_mode = stat.S_IMODE(os.fstat(fd).st_mode)
            if callable(data):
                os.close(fd)
                fd = None
                # A writer given a name may replace the file: safetensors writes its own temporary
                # file (inside our folder) and renames it over ours. What is there must be a file.
                data(tmp)
                fd = os.open(tmp, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise UserError(f"{tmp} is not a regular file after writing; nothing was changed")
            else:
                view = memoryview(data.encode("utf-8") if isinstance(data, str) else bytes(data))
                while view:  # os.write may write less than asked (signals, a full disk): loop
                    view = view[os.write(fd, view):]
            old_mode = _old_mode(path)  # the replaced file's permissions (a 0600 file stays 0600)
            os.fchmod(fd, new_mode if old_mode is None else old_mode)
            os.fsync(fd)  # the bytes are on disk before the rename makes them the file
            check_output_path(path)  # still absent or regular: a FIFO made meanwhile is not replaced
            os.replace(tmp, path)
        except OSError as e:
            raise UserError(f"{path}: could not write ({_one_line(e)}); the previous version is intact") from e
        except Exception as e:  # safetensors reports a full disk as its own error type
            if type(e).__name__ == "SafetensorError":
                raise UserError(f"{path}: could not write ({_one_line(e)}); the previous version is intact") from e
            raise
    finally:
        if fd is not None:
            os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)  # empty after a rename; whatever is left, after a failure
    _fsync_folder(path.parent)


def _create_temp_folder(path: Path) -> Path:
    """A new private folder `.{name}.{random}.llmcore-tmp` beside `path`, for writing it.

    mkdir is exclusive (it fails on anything already there, a planted symlink included),
    the 48 random bits make the name unguessable, and mode 0700 keeps everyone else out,
    so nobody can plant a link at the file written inside. A writer's own temporary
    files (safetensors makes one) land inside too: one pattern for the cleanup to know.
    """
    for _ in range(100):
        folder = path.with_name(f".{path.name[:200]}.{secrets.token_hex(6)}{TEMP_SUFFIX}")
        try:
            os.mkdir(folder, 0o700)
            return folder
        except FileExistsError:
            continue
        except OSError as e:
            raise UserError(f"cannot write in {path.parent}: {e.strerror or _one_line(e)}") from None
    raise UserError(f"cannot create a temporary folder in {path.parent}; remove its *{TEMP_SUFFIX} entries")


def _old_mode(path: Path) -> int | None:
    """The permissions of the file about to be replaced (a 0600 file stays 0600), or None."""
    try:
        return stat.S_IMODE(os.lstat(path).st_mode)
    except FileNotFoundError:
        return None


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable: fsync the folder (where the OS allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def append_line(path, line: str) -> None:
    """Add one line to a log file (created if absent), never through a symlink or into a FIFO.

    Logs grow while a run trains, so they are appended to rather than rewritten; a run
    killed mid-line leaves a torn last line, which `llmcore.run.read_jsonl` skips.
    """
    path = check_output_path(path)
    # O_NOFOLLOW: a symlink put here since the check is refused by the kernel (ELOOP);
    # O_NONBLOCK: a FIFO put here cannot make the open hang (it fails or is caught below).
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO, errno.EMLINK):
            check_output_path(path)  # says what the path has become
        raise UserError(f"{path}: could not write ({_one_line(e)})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UserError(f"{path} is not a regular file; llmcore writes only regular files")
        data = memoryview((line if line.endswith("\n") else line + "\n").encode("utf-8"))
        while data:
            data = data[os.write(fd, data):]
    except OSError as e:
        raise UserError(f"{path}: could not write ({_one_line(e)})") from None
    finally:
        os.close(fd)


def remove_stale_temps(folder) -> list[str]:
    """Delete the temporary folders killed writers left in `folder`; returns their names.

    Call it only while holding the folder's lock (`lock_folder`): a live writer's
    temporary folder looks just the same. Nothing is followed: a symlink at such a name
    is removed as a link, and rmtree does not descend through links.
    """
    removed = []
    for p in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        try:
            if stat.S_ISDIR(os.lstat(p).st_mode):
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p.name)
        except OSError:
            continue
    return removed


class lock_folder:
    """Hold `folder/.llmcore.lock` (flock, exclusive, non-blocking) while writing in the folder.

        with lock_folder(out):
            ... train ...

    A second process asking for the same folder gets a one-line refusal instead of
    interleaving its metrics with the first's. The lock belongs to the open file, so it
    goes away when the process dies, however it dies; a clean exit also deletes the file.
    """

    def __init__(self, folder, doing: str = "training"):
        import fcntl

        folder = check_output_folder(folder)
        self.path, self.fd = folder / LOCK_FILE, None
        flags = os.O_RDWR | os.O_CREAT | _NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        for _ in range(100):
            check_output_path(self.path)  # absent or a regular file: never a planted symlink or FIFO
            try:
                fd = os.open(self.path, flags, 0o666)
            except OSError as e:
                raise UserError(f"cannot lock {folder}: {e.strerror or _one_line(e)}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise UserError(f"{folder} is in use by another llmcore process ({doing} there); "
                                f"wait for it to finish or choose another folder") from None
            # The holder before us may have deleted the file between our open and our flock:
            # then we hold a lock on a file nobody else can see. Only the file at the path counts.
            try:
                same = os.path.samestat(os.fstat(fd), os.lstat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return
            os.close(fd)
        raise UserError(f"cannot lock {folder}: its {LOCK_FILE} keeps changing; try again")

    def close(self) -> None:
        """Release: delete the lock file, then close it (closing releases the flock)."""
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- reading ----------------------------------------------------------------------------

_INPUT_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _INPUT_KINDS if test(mode)), "not a regular file")


def _open(path, what: str) -> tuple[int, os.stat_result]:
    """Open `path` for reading without blocking; (fd, stat) of a regular file, or a UserError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise UserError(describe_os_error(path, e, what)) from None
    except ValueError:  # a NUL byte in the path
        raise UserError(f"cannot read {str(path)!r:.80}: a path cannot hold a NUL byte") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = _kind(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            raise UserError(f"{path}: {kind}, not a {what}; give the path of a file")
        raise UserError(f"{path}: {kind}, not a regular file; llmcore reads a {what} only from a regular file")
    return fd, st


def check_input(path, what: str = "file") -> os.stat_result:
    """Refuse anything but an existing, readable regular file; return its stat."""
    fd, st = _open(path, what)
    os.close(fd)
    return st


def open_input(path, what: str = "file"):
    """(binary file object, stat) for a regular file, opened for ordinary blocking reads."""
    fd, st = _open(path, what)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb"), st


def read_bytes(path, what: str = "file", limit: int = 64 * 2**20) -> bytes:
    """The bytes of a regular file no larger than `limit`; every other case is a one-line UserError."""
    fd, st = _open(path, what)
    try:
        if st.st_size > limit:  # checked before reading: a 5 GB file costs nothing
            raise UserError(f"{path}: {st.st_size:,} bytes is more than the {limit:,} bytes llmcore takes "
                            f"for a {what}; use a smaller file")
        os.set_blocking(fd, True)
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # it grew while we read it
                raise UserError(f"{path}: more than the {limit:,} bytes llmcore takes for a {what}")
        return b"".join(chunks)
    except OSError as e:  # EIO from a failing disk, EISDIR on some file systems
        raise UserError(describe_os_error(path, e, what)) from None
    finally:
        os.close(fd)


def read_text(path, what: str = "text file", limit: int = 64 * 2**20) -> str:
    """A regular file's UTF-8 text (see read_bytes); a byte that is not UTF-8 is a UserError with its offset."""
    data = read_bytes(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                        "save it as UTF-8") from None


def sha256(path) -> bytes:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (which model a file belongs to)."""
    import hashlib

    h = hashlib.sha256()
    f, _ = open_input(path)
    with f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.digest()


def is_regular(path) -> bool:
    """True for an existing regular file (following symlinks); never raises, never opens it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False
