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


def test_limit_threads_sets_and_restores():
    """The one thread-limiting helper: torch threads (and BLAS threads on request) inside, the old ones after."""
    import torch
    from threadpoolctl import threadpool_info

    from compare.threads import one_thread
    from learned.runtime import limit_threads

    def blas() -> set[int]:
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}

    # the tests run with one thread (tests/conftest.py): start from two, so that one_thread has something to do
    with limit_threads(2, blas=True):
        before, before_blas = torch.get_num_threads(), blas()
        other = 3 if before == 1 else 1  # a setting that differs from the current one
        with limit_threads(other):
            assert torch.get_num_threads() == other and blas() == before_blas
        with one_thread():
            assert torch.get_num_threads() == 1 and blas() <= {1}
        with pytest.raises(RuntimeError), limit_threads(1, blas=True):
            raise RuntimeError("restored on errors too")
        with limit_threads(0):
            assert torch.get_num_threads() == before
        assert torch.get_num_threads() == before and blas() == before_blas


def test_no_library_module_imports_a_cli_module():
    """Only ``__main__`` modules parse arguments; everything else imports library modules."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    bad = []
    for path in sorted(p for pkg in ("rasp_programs", "compiled", "learned", "compare") for p in (root / pkg).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{path.relative_to(root)}: {n}" for n in names if n.endswith("__main__")]
    assert not bad
