"""model-converter's files (issue 20): an output is never an input, every OS problem is
one line naming the file, the two outputs are written as one change, and unreadable or
oversized inputs are refused."""
import os

import pytest

from bmxnet.converter import ConversionError, convert
from tiny_model import assert_one_line_error, export_tiny, run_cli, sha


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Prefix of an exported TinyNet with 64 channels."""
    return export_tiny(tmp_path_factory.mktemp("tiny"), 64)


def copy_model(prefix, directory):
    """A copy of the model's two files in `directory` (made); returns the new prefix."""
    os.makedirs(str(directory), exist_ok=True)
    new = os.path.join(str(directory), "net")
    for suffix in ("-symbol.json", "-0000.params"):
        with open(prefix + suffix, "rb") as source, open(new + suffix, "wb") as target:
            target.write(source.read())
    return new


def output_aliases(tmp_path, prefix):
    """{case: an output prefix that names an input another way}."""
    os.symlink(os.path.dirname(prefix), str(tmp_path / "alias"))
    os.link(prefix + "-0000.params", str(tmp_path / "hard-0000.params"))
    os.symlink(prefix + "-symbol.json", str(tmp_path / "soft-symbol.json"))
    return {"the input prefix": prefix,
            "through ..": os.path.join(os.path.dirname(prefix), "..", os.path.basename(os.path.dirname(prefix)), "net"),
            "through a symlinked directory": str(tmp_path / "alias" / "net"),
            "a hard link of the params": str(tmp_path / "hard"),
            "a symlink to the symbol": str(tmp_path / "soft")}


def test_converter_refuses_output_that_is_an_input(tiny, tmp_path):
    prefix = copy_model(tiny, tmp_path / "dl")
    inputs = [prefix + "-symbol.json", prefix + "-0000.params"]
    before = {path: sha(path) for path in inputs}
    for case, out_prefix in output_aliases(tmp_path, prefix).items():
        code, _, err = run_cli(inputs[0], inputs[1], "-o", out_prefix)
        assert_one_line_error(code, err, "would overwrite the input")
        assert {path: sha(path) for path in inputs} == before, case


def unwritable_outputs(tmp_path):
    """{case: (output prefix, expected cause)}."""
    (tmp_path / "ro-symbol.json").write_text("old")
    os.chmod(str(tmp_path / "ro-symbol.json"), 0o444)
    (tmp_path / "dir-0000.params").mkdir()
    (tmp_path / "file").write_text("a file")
    return {"read-only output file": (str(tmp_path / "ro"), "read-only"),
            "output that is a directory": (str(tmp_path / "dir"), "Is a directory"),
            "name too long": (str(tmp_path / ("n" * 300)), "File name too long"),
            "directory that is a file": (str(tmp_path / "file" / "out"), "is not a directory"),
            "directory nobody may write": ("/proc/bmxnet-test/out", "cannot write")}


def test_converter_reports_unwritable_outputs_in_one_line(tiny, tmp_path):
    for case, (out_prefix, cause) in unwritable_outputs(tmp_path).items():
        code, _, err = run_cli(tiny + "-symbol.json", tiny + "-0000.params", "-o", out_prefix)
        assert_one_line_error(code, err, cause)
        assert out_prefix in err, (case, err)
    assert (tmp_path / "ro-symbol.json").read_text() == "old"
    assert sorted(os.listdir(str(tmp_path))) == ["dir-0000.params", "file", "ro-symbol.json"]


def test_failed_symbol_write_leaves_the_old_pair_and_no_orphan(tiny, tmp_path, monkeypatch):
    from bmxnet.converter import model_files
    out = str(tmp_path / "out")

    def disk_full(path, text):
        raise OSError(28, os.strerror(28))
    monkeypatch.setattr(model_files, "_write_text", disk_full)
    with pytest.raises(ConversionError, match="out-symbol.json: cannot write .No space left on device."):
        convert(tiny + "-symbol.json", tiny + "-0000.params", out)
    assert os.listdir(str(tmp_path)) == []  # no params file without its symbol
    for name in ("out-symbol.json", "out-0000.params"):
        (tmp_path / name).write_text("old " + name)
    with pytest.raises(ConversionError):
        convert(tiny + "-symbol.json", tiny + "-0000.params", out)
    assert sorted(os.listdir(str(tmp_path))) == ["out-0000.params", "out-symbol.json"]
    assert [(tmp_path / n).read_text() for n in ("out-symbol.json", "out-0000.params")] == \
        ["old out-symbol.json", "old out-0000.params"]


def test_failed_second_rename_puts_the_first_file_back(tiny, tmp_path, monkeypatch):
    from bmxnet import fileio
    for name in ("out-symbol.json", "out-0000.params"):
        (tmp_path / name).write_text("old " + name)
    renames, real_replace = [], os.replace

    def second_rename_fails(source, target):
        renames.append(target)
        if len(renames) == 2:
            raise OSError(5, os.strerror(5))
        real_replace(source, target)
    monkeypatch.setattr(fileio.os, "replace", second_rename_fails)
    with pytest.raises(ConversionError, match="out-symbol.json: cannot write .Input/output error."):
        convert(tiny + "-symbol.json", tiny + "-0000.params", str(tmp_path / "out"))
    assert sorted(os.listdir(str(tmp_path))) == ["out-0000.params", "out-symbol.json"]
    assert (tmp_path / "out-0000.params").read_text() == "old out-0000.params"


def test_converter_reports_unreadable_and_oversized_input_in_one_line(tiny, tmp_path):
    os.mkfifo(str(tmp_path / "fifo-symbol.json"))  # reading it would wait for a writer
    with open(str(tmp_path / "huge-symbol.json"), "wb") as f:
        f.truncate(65 << 20)  # sparse
    with open(str(tmp_path / "huge.params"), "wb") as f:
        f.truncate((4 << 30) + 1)
    (tmp_path / "deep-symbol.json").write_text("[" * 100000 + "]" * 100000)
    (tmp_path / "latin1-symbol.json").write_bytes(b'{"nodes": "\xe9"}')
    with open(tiny + "-0000.params", "rb") as f:
        raw = f.read()
    (tmp_path / "huge-shape.params").write_bytes(raw[:36] + (2 ** 62).to_bytes(8, "little") + raw[44:])
    params = tiny + "-0000.params"
    cases = [(tmp_path / "fifo-symbol.json", params, "not a regular file"),
             (tmp_path / "huge-symbol.json", params, "too large"),
             (tmp_path / "deep-symbol.json", params, "nested too deeply"),
             (tmp_path / "latin1-symbol.json", params, "not JSON"),
             (tmp_path, params, "not a regular file"),
             (tiny + "-symbol.json", tmp_path / "huge-shape.params", "corrupt params file"),
             (tiny + "-symbol.json", tmp_path / "huge.params", "too large")]
    for symbol, params_file, message in cases:
        code, _, err = run_cli(symbol, params_file, "-o", tmp_path / "out")
        assert_one_line_error(code, err, message)
    assert not [name for name in os.listdir(str(tmp_path)) if name.startswith("out")]
