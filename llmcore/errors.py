"""The one error type llmcore raises for bad input, and the one boundary that reports errors.

Every user-facing entry point (CLI, notebook helper, dashboard widget) turns bad
input into a `UserError` whose message is one line that says what went wrong and
what to do. `explain(exception)` is the boundary: it turns what can be expected
from the outside world (a missing or special file, no permission, a full disk,
text that is not UTF-8, memory that runs out) into an exit code and one line too,
and says "this is a bug" about anything else. The exit codes:

    0    done
    1    an unexpected error: a bug in llmcore (please report it; --verbose shows the traceback)
    2    bad input: a wrong, missing or special file, an impossible flag value, a bad command line
    3    the machine ran out of something: memory or disk space (smaller sizes, or free some space)
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import errno
import os

EXIT_OK, EXIT_BUG, EXIT_BAD_INPUT, EXIT_RESOURCES, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_BUG: "an unexpected error: a bug in llmcore (please report it; --verbose shows the traceback)",
    EXIT_BAD_INPUT: "bad input: a wrong, missing or special file, an impossible flag value, a bad command line",
    EXIT_RESOURCES: "out of memory or disk space: use smaller sizes, or free some space",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


class UserError(ValueError):
    """Bad input from a user: a wrong file, an impossible setting, an empty prompt."""


# Messages torch and the allocator use when an allocation fails (CPU and CUDA).
_NO_MEMORY = ("can't allocate memory", "out of memory", "not enough memory", "std::bad_alloc",
              "cannot allocate memory")


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:300]


def explain(e: BaseException) -> tuple[int, str]:
    """(exit code, one line) for an exception that reached an entry point.

    >>> explain(UserError("--steps must be positive"))
    (2, '--steps must be positive')
    >>> explain(FileNotFoundError(2, "No such file or directory", "runs/x"))[0]
    2
    """
    if isinstance(e, UserError):
        return EXIT_BAD_INPUT, _first_line(e)
    if isinstance(e, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and any(s in str(e).lower() for s in _NO_MEMORY)):
        return EXIT_RESOURCES, ("out of memory; use smaller sizes (a smaller --preset, --batch-size, --n-chars "
                                "or --n-ctx) or close other programs")
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f"{e.filename}: " if e.filename else ""
        return EXIT_RESOURCES, f"{where}no space left on the disk; free some space or write somewhere else"
    if isinstance(e, OSError) and e.errno == errno.ENOMEM:
        return EXIT_RESOURCES, "out of memory; use smaller sizes or close other programs"
    if isinstance(e, OSError) and e.filename is not None:
        return EXIT_BAD_INPUT, describe_os_error(e.filename, e)
    if isinstance(e, OSError) and e.errno is not None:
        return EXIT_BAD_INPUT, f"{e.strerror or _first_line(e)}; check the paths you gave"
    if isinstance(e, UnicodeError):
        return EXIT_BAD_INPUT, (f"text that is not valid UTF-8 ({_first_line(e)}); give UTF-8 text and paths")
    return EXIT_BUG, (f"unexpected {type(e).__name__}: {_first_line(e)}. This is a bug, please report it "
                      "(run again with --verbose for the details)")


def describe_os_error(path, e: OSError, what: str = "file") -> str:
    """One line for an OSError met while opening `path`: what is wrong and what to do."""
    p = str(path)
    if e.errno == errno.ENOENT:
        if os.path.islink(p):
            return f"{p}: a symlink to something that does not exist; give the path of a real {what}"
        return f"{p}: no such {what}; check the path"
    if e.errno == errno.ELOOP:
        return f"{p}: a symlink loop (too many levels of symbolic links); give the path of a real {what}"
    if e.errno in (errno.EACCES, errno.EPERM):
        return f"{p}: permission denied; check the file's permissions or choose another {what}"
    if e.errno == errno.EISDIR:
        return f"{p}: a folder, not a {what}; give the path of a file"
    if e.errno == errno.ENOTDIR:
        return f"{p}: part of this path is a file, not a folder; check the path"
    if e.errno == errno.ENAMETOOLONG:
        return f"{p[:80]}...: the path is too long"
    return f"{p}: cannot read it ({e.strerror or type(e).__name__}); check the path"
