"""Reading files with bounded memory; writing files so that they are whole or absent, one
file or several as one change.

A file is written to a temporary file beside it, named .bmxnet-tmp-<pid>-<random>-<name>,
flushed to disk and renamed into place. A process killed meanwhile leaves only such
temporaries, which remove_leftovers recognises (and which nothing else is named like).
"""
import os
import re
import secrets
import stat
import tempfile

TEMP_PREFIX = ".bmxnet-tmp-"
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-")


def read_regular_file(path, limit=None):
    """The bytes of the regular file at `path` (a bytearray), at most `limit` of them;
    ValueError naming the file for anything else (a FIFO or device is not even waited on)."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError("%s: cannot read (%s)" % (path, getattr(error, "strerror", None) or error)) from None
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("%s: cannot read (not a regular file)" % path)
        if limit is not None and info.st_size > limit:
            raise ValueError("%s: too large (%d bytes; the limit is %d)" % (path, info.st_size, limit))
        raw = bytearray(info.st_size)
        with os.fdopen(os.dup(handle), "rb") as f:
            size = f.readinto(raw)
    except OSError as error:
        raise ValueError("%s: cannot read (%s)" % (path, error.strerror or error)) from None
    finally:
        os.close(handle)
    return raw[:size] if size != len(raw) else raw


def atomic_write(path, write):
    """Calls write(temp_path), then renames the file into place: it is whole or absent."""
    replace_together([(path, write)])


def replace_together(writes):
    """Writes files as one change: write(temp) for every (path, write), each temp file beside
    its path and flushed to disk, then renames them all into place.

    If a write or a rename fails, the paths renamed so far get their old files back (kept
    aside as hard links) or are removed again, so no path is left with a new file beside an
    old one; temporary files and directories made for them are removed, and the error is
    raised (an OSError names the path it concerns). POSIX renames one name at a time:
    only a process killed between two renames (a window of two system calls, after every
    file is complete on disk) can leave a new and an old file side by side.
    """
    temps, aside, renamed, made = [], {}, [], []
    try:
        for path, write in writes:
            made += _make_directories(os.path.dirname(os.path.abspath(path)), path)
            temps.append(_named(path, temp_beside, path))
            _named(path, write, temps[-1])
            _named(path, finish_file, temps[-1])
        if len(writes) > 1:
            for path, _ in writes:
                if os.path.lexists(path):
                    aside[path] = _named(path, _link_aside, path)
        for (path, _), temp in zip(writes, temps):
            _named(path, os.replace, temp, path)
            renamed.append(path)
    except BaseException:
        for path in reversed(renamed):
            _undo(path, aside)
        _clean_up(temps + list(aside.values()), made)
        raise
    _clean_up(list(aside.values()), [])
    for directory in {os.path.dirname(os.path.abspath(path)) for path, _ in writes}:
        sync_directory(directory)


def _named(path, function, *args):
    """function(*args); an OSError it raises names `path` (not a temporary file)."""
    try:
        return function(*args)
    except OSError as error:
        if error.errno is None:
            raise
        raise OSError(error.errno, error.strerror or str(error), path) from None


def _make_directories(directory, path):
    """Makes `directory` and its missing parents; returns those it made, outermost first."""
    missing = []
    while not os.path.lexists(directory):
        missing.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    made = []
    for name in reversed(missing):
        _named(path, os.mkdir, name)
        made.append(name)
    return made


def temp_beside(path):
    """A new empty temporary file in path's directory (see the module docstring)."""
    directory, name = os.path.split(os.path.abspath(path))
    handle, temp = tempfile.mkstemp(dir=directory, prefix="%s%d-" % (TEMP_PREFIX, os.getpid()), suffix="-" + name)
    os.close(handle)
    return temp


def finish_file(temp):
    """Gives a temp file the usual permissions (mkstemp makes 0600) and flushes it to disk."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o666 & ~umask)
    handle = os.open(temp, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _link_aside(path):
    """A second name for the file at `path` (a hard link, else a copy), to put it back."""
    directory, name = os.path.split(os.path.abspath(path))
    while True:
        kept = os.path.join(directory, "%s%d-%s-%s.old" % (TEMP_PREFIX, os.getpid(), secrets.token_hex(6), name[:64]))
        try:
            os.link(path, kept, follow_symlinks=False)
            return kept
        except FileExistsError:
            continue
        except OSError:  # no hard links here: copy
            with open(path, "rb") as source, open(kept, "xb") as copy:
                while True:
                    chunk = source.read(1 << 20)
                    if not chunk:
                        return kept
                    copy.write(chunk)


def _undo(path, aside):
    """Puts back the file that was at `path` before (or removes `path` if there was none)."""
    try:
        if path in aside:
            os.replace(aside.pop(path), path)
        else:
            os.remove(path)
    except OSError:
        pass  # the old file stays under its aside name, which is then not removed


def _clean_up(files, directories):
    """Removes temporary files, then the directories made for them (outermost last)."""
    for name in files:
        _remove(name, os.remove)
    for directory in reversed(directories):
        _remove(directory, os.rmdir)


def _remove(path, remove):
    try:
        if os.path.lexists(path):
            remove(path)
    except OSError:
        pass


def remove_quietly(path):
    """Removes the file at path, if there is one."""
    _remove(path, os.remove)


def _process_alive(pid):
    if pid == os.getpid():
        return False  # this process has not written yet when it looks: the file is an earlier one's
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to someone else
        return True
    return True


def remove_leftovers(directory):
    """Removes the temporaries of killed processes from directory (never those of a live
    process, nor any other file); returns their names."""
    removed = []
    for name in sorted(os.listdir(directory)):
        match = _TEMP_NAME.match(name)
        path = os.path.join(directory, name)
        if match and os.path.isfile(path) and not os.path.islink(path) and not _process_alive(int(match.group(1))):
            remove_quietly(path)
            removed.append(name)
    return removed


def sync_directory(directory):
    """Flushes a directory's entries (the renames) to disk where the system allows it."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
