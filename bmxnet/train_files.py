"""Files of a training run written whole: each goes to a temporary file named
.bmxnet-tmp-<pid>-<random>-<name> in the target's directory, is flushed to disk and renamed into
place. A run killed meanwhile leaves only such temporaries, which the next run removes."""
import hashlib
import os
import re
import tempfile

TEMP_PREFIX = ".bmxnet-tmp-"
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-")


def temp_file(path):
    """A new empty temporary file beside path (see the module docstring), with the permissions
    a plain open() would give."""
    directory, name = os.path.split(os.path.abspath(path))
    handle, temp = tempfile.mkstemp(dir=directory, prefix="%s%d-" % (TEMP_PREFIX, os.getpid()), suffix="-" + name)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o666 & ~umask)  # mkstemp creates 0600
    return temp


def sync_file(path):
    """Flushes a file written by someone else (MXNet, matplotlib) to disk."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def sync_directory(directory):
    """Makes renames in directory durable (a no-op where directories cannot be opened)."""
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


def remove_quietly(path):
    """Removes path if it exists."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def write_atomically(path, write):
    """Calls write(temp_path), flushes it and renames it to path: path is whole or as it was."""
    temp = temp_file(path)
    try:
        write(temp)
        sync_file(temp)
        os.replace(temp, path)
    finally:
        remove_quietly(temp)
    sync_directory(os.path.dirname(os.path.abspath(path)))


def digest(path):
    """{"bytes": size, "sha256": hex digest} of a file."""
    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            size += len(block)
    return {"bytes": size, "sha256": sha.hexdigest()}


def _process_alive(pid):
    if pid == os.getpid():
        return False  # this run has written nothing yet: the file is an earlier process's
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to someone else
        return True
    return True


def remove_leftovers(directory):
    """Removes the temporaries of killed runs from directory (never those of a live process
    nor any other file); returns their names."""
    removed = []
    for name in sorted(os.listdir(directory)):
        match = _TEMP_NAME.match(name)
        path = os.path.join(directory, name)
        if match and os.path.isfile(path) and not os.path.islink(path) and not _process_alive(int(match.group(1))):
            remove_quietly(path)
            removed.append(name)
    return removed
