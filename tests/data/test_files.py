"""seqtag.data.files: a data file is checked before it is read, and only its first byte is read."""

import os

import pytest

from seqtag.data.files import check_readable_file
from seqtag.errors import DataError


def test_a_readable_file_passes(tmp_path):
    p = tmp_path / "train.txt"
    p.write_text("a O\n")
    assert check_readable_file(p, "data.train") == p
    (tmp_path / "empty.txt").write_text("")
    assert check_readable_file(tmp_path / "empty.txt") == tmp_path / "empty.txt"


def test_missing_file_names_the_key_and_the_fix(tmp_path):
    with pytest.raises(DataError, match=r"^data\.dev: file .*nope\.txt does not exist; fix the path in the config or "
                                        r"override it with data\.dev=PATH$"):
        check_readable_file(tmp_path / "nope.txt", "data.dev")


def test_a_directory_is_called_a_directory(tmp_path):
    for name in ("a.txt", "b.txt", "c.txt", "d.txt", "e.txt"):
        (tmp_path / name).write_text("")
    with pytest.raises(DataError, match=r"is a directory, not a file \(it holds a\.txt, b\.txt, c\.txt, d\.txt, "
                                        r"\.\.\.\); name a data file in data\.train$"):
        check_readable_file(tmp_path, "data.train")
    (tmp_path / "sub").mkdir()
    with pytest.raises(DataError, match=r"^.*sub is a directory, not a file \(it is empty\); name a data file$"):
        check_readable_file(tmp_path / "sub")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file(tmp_path):
    p = tmp_path / "secret.txt"
    p.write_text("a O\n")
    p.chmod(0)
    with pytest.raises(DataError, match=r"data\.train: cannot read .*secret\.txt: Permission denied"):
        check_readable_file(p, "data.train")
