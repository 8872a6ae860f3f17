"""Program registry: ``name -> ProgramSpec``."""

from __future__ import annotations

from rasp_programs.errors import ToolkitError
from rasp_programs.programs import HIST, MIU, SORT
from rasp_programs.spec import ProgramSpec

PROGRAMS: dict[str, ProgramSpec] = {p.name: p for p in (MIU, HIST, SORT)}


def get_program(name: str) -> ProgramSpec:
    """Looks a program up by name; raises ``ToolkitError`` listing the known ones."""
    try:
        return PROGRAMS[name]
    except KeyError:
        raise ToolkitError(f"unknown program {name!r}; known programs: {', '.join(sorted(PROGRAMS))}") from None


def resolve_max_len(spec: ProgramSpec, max_len: int | str | None) -> int:
    """``MAX_LEN`` from the command line: empty means the program's default."""
    if max_len is None or max_len == "":
        return spec.default_max_len
    if isinstance(max_len, str):
        try:
            max_len = int(max_len)
        except ValueError:
            raise ToolkitError(f"MAX_LEN must be an integer, got {max_len!r}") from None
    return spec.check_max_len(max_len)
