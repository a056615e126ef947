"""Checks a shared library file before anything opens it: opening one runs its constructors,
so bmxnet reads, without running it, that the file is an ELF library for this machine that
exports bmxnet's build record, and which MXNet version that record names.

The record is `bmxnet_build_record`, a string in the library's read-only data (library.cc).
Only the dynamic symbol table and that string are read, each offset checked against the file.
"""
import os
import platform
import stat
import struct

RECORD_SYMBOL = b"bmxnet_build_record"
RECORD_PREFIX = "bmxnet library for MXNet "
MACHINES = {"x86_64": 62, "AMD64": 62, "aarch64": 183, "arm64": 183}  # ELF e_machine codes
SHT_DYNSYM = 11
MAX_RECORD = 256


class LibraryCheckError(Exception):
    """The file is not a bmxnet library this process may open; the message is one line."""


def check_permissions(path):
    """Refuses a file that others may rewrite (world-writable, or in a world-writable
    directory without the sticky bit): what is checked must be what gets opened."""
    for target, what in ((path, "file"), (os.path.dirname(path) or ".", "directory")):
        mode = os.stat(target).st_mode
        sticky_dir = what == "directory" and mode & stat.S_ISVTX
        if mode & stat.S_IWOTH and not sticky_dir:
            raise LibraryCheckError("%s: its %s is writable by every user; refusing to load it" % (path, what))


class _ElfFile:
    def __init__(self, handle, path):
        self.handle, self.path = handle, path
        self.size = os.fstat(handle.fileno()).st_size

    def read(self, offset, count, what):
        if offset < 0 or count < 0 or offset + count > self.size:
            raise LibraryCheckError("%s: damaged library (%s lies outside the file)" % (self.path, what))
        self.handle.seek(offset)
        return self.handle.read(count)


def _sections(elf):
    if elf.read(0, min(4, elf.size), "the ELF header") != b"\x7fELF":
        raise LibraryCheckError("%s: not a shared library (no ELF header)" % elf.path)
    ident = elf.read(0, 64, "the ELF header")
    if ident[4] != 2 or ident[5] != 1:
        raise LibraryCheckError("%s: not a 64-bit little-endian library" % elf.path)
    e_type, e_machine = struct.unpack_from("<HH", ident, 16)
    expected = MACHINES.get(platform.machine())
    if e_type != 3 or (expected is not None and e_machine != expected):
        raise LibraryCheckError("%s: not a shared library for this machine (%s; ELF type %d, machine %d)"
                                % (elf.path, platform.machine(), e_type, e_machine))
    shoff, = struct.unpack_from("<Q", ident, 40)
    shentsize, shnum = struct.unpack_from("<HH", ident, 58)
    if shentsize != 64 or not 0 < shnum < 65280:
        raise LibraryCheckError("%s: damaged library (section table)" % elf.path)
    table = elf.read(shoff, shnum * 64, "the section table")
    sections = []  # (type, address, offset, size, link, entry size) per section
    for i in range(shnum):
        _name, kind, _flags, address, offset, size, link, _info, _align, entry = struct.unpack_from(
            "<IIQQQQIIQQ", table, i * 64)
        sections.append((kind, address, offset, size, link, entry))
    return sections


def build_record(path):
    """The build record string of the library at `path`, read without opening it as code."""
    with open(path, "rb") as handle:
        elf = _ElfFile(handle, path)
        sections = _sections(elf)
        for kind, _addr, offset, size, link, entry in sections:
            if kind != SHT_DYNSYM or entry != 24 or link >= len(sections):
                continue
            symbols = elf.read(offset, size, "the symbol table")
            _, _, names_offset, names_size, _, _ = sections[link]
            names = elf.read(names_offset, names_size, "the symbol names")
            for i in range(size // 24):
                name, _info, _other, section, value, length = struct.unpack_from("<IBBHQQ", symbols, i * 24)
                if names[name:name + len(RECORD_SYMBOL) + 1] != RECORD_SYMBOL + b"\0":
                    continue
                if section >= len(sections) or not 0 < length <= MAX_RECORD:
                    break
                _, address, data_offset, _, _, _ = sections[section]
                text = elf.read(data_offset + value - address, length, "the build record")
                return text.split(b"\0", 1)[0].decode("ascii", "replace")
    raise LibraryCheckError("%s is not a bmxnet library (it has no bmxnet build record)" % path)


def mxnet_version_of(path):
    """The MXNet version the bmxnet library at `path` was built for."""
    record = build_record(path)
    if not record.startswith(RECORD_PREFIX):
        raise LibraryCheckError("%s: unreadable bmxnet build record %r" % (path, record))
    return record[len(RECORD_PREFIX):]
