"""The error a user can cause and fix: the programs print its message as one line and exit 1."""

import errno


class UserError(Exception):
    """Bad input (config, dataset, workdir, checkpoint); the message says how to fix it."""


# What to do about a failed read or write, by errno: the faults of a disk or a directory.
_OS_FIXES = {
    errno.ENOSPC: "free space there and rerun: a run resumes from its last complete checkpoint",
    errno.EDQUOT: "free space there and rerun: a run resumes from its last complete checkpoint",
    errno.EROFS: "the file system is mounted read-only; choose a writable --workdir",
    errno.EACCES: "this user may not write there; choose a writable --workdir or change its permissions",
    errno.EPERM: "this user may not write there; choose a writable --workdir or change its permissions",
    errno.ENOENT: "the path does not exist (or was removed while in use); check it and rerun",
}

# Orbax and TensorStore report a failed write as a ValueError carrying the operating system's code.
_OS_CODE_IN_MESSAGE = {"No space left on device": errno.ENOSPC, "os_error_code='28'": errno.ENOSPC,
                       "Read-only file system": errno.EROFS, "Permission denied": errno.EACCES}


def os_errno(error: BaseException) -> int | None:
    """The operating system's error code behind `error` (an OSError, or a library's error whose
    message carries it), or None."""
    if isinstance(error, OSError) and error.errno is not None:
        return error.errno
    text = str(error)
    return next((code for needle, code in _OS_CODE_IN_MESSAGE.items() if needle in text), None)


def describe_os_error(error: OSError) -> str:
    """One line for a failed read or write: what failed, on which path, and what to do."""
    path = error.filename if error.filename is not None else ""
    path = path.decode(errors="replace") if isinstance(path, bytes) else str(path)
    what = error.strerror or str(error)
    fix = os_fix(error.errno)
    return f"{what.lower()}: {path}" + (f"; {fix}" if fix else "")


def os_fix(code: int | None) -> str | None:
    """What a user does about the operating system's error `code`, where we know."""
    return _OS_FIXES.get(code)


def error_line(message: str) -> str:
    """`message` as the program's last stderr line, "error: ..." on a line of its own: a progress
    bar still open has drawn its line without ending it (tqdm ends it only when closed)."""
    from tqdm import tqdm  # Imported here: the error types above are imported by every module.

    open_bar = any(not bar.disable for bar in getattr(tqdm, "_instances", ()))
    return ("\n" if open_bar else "") + f"error: {message}\n"
