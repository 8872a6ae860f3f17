"""The one seed parser both command lines use: what it accepts and what it refuses, as one-line errors."""

import pytest

from rasp_programs.cli import parse_seeds
from rasp_programs.errors import ToolkitError


@pytest.mark.parametrize("text, seeds", [("0 1", [0, 1]), ("0,1", [0, 1]), (" 3 , 0 ,2 ", [3, 0, 2]), ("7", [7])])
def test_accepts_spaces_and_commas(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text, message", [("", "empty"), ("  , ", "empty"), ("a", "non-negative integer"),
                                           ("1.5", "non-negative integer"), ("-1", "non-negative integer"),
                                           ("+1", "non-negative integer"), ("1 1", "duplicates"),
                                           ("0,2 0", "duplicates")])
def test_refuses_with_one_line(text, message):
    with pytest.raises(ToolkitError, match=message) as e:
        parse_seeds(text)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("module", ["compare.__main__", "learned.__main__", "compare.dynamics"])
@pytest.mark.parametrize("seeds", ["1 1", "-1"])
def test_every_cli_refuses_the_same_seeds(module, seeds, tmp_path, capsys):
    """Each CLI stops on the seeds before reading any artifact (the folder here is empty) and writes nothing."""
    import importlib

    main = importlib.import_module(module).main
    argv = ["--program", "miu", "--artifacts", str(tmp_path / "none"), "--seeds", seeds]
    if module != "learned.__main__":
        argv += ["--reports", str(tmp_path / "reports")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    assert ("duplicates" if seeds == "1 1" else "non-negative integer") in err
    assert not any(tmp_path.iterdir())
