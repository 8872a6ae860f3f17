"""Registries: ``name -> ProgramSpec`` and ``name -> Task``; several programs may solve one task.

``PROGRAMS`` holds the hand-written programs. The automaton tasks
(``rasp_programs.automata``) have derived candidates instead
(``rasp_programs.automaton_programs``), looked up by the same functions:
``tomita5.counts`` is one candidate, ``tomita5`` the task's first applicable
one (renamed to the task, so its artifacts live under ``artifacts/tomita5/``).
"""

from __future__ import annotations

from rasp_programs import automata, automaton_programs, miu_programs, miu_scan
from rasp_programs.errors import ToolkitError
from rasp_programs.programs import HIST, SORT
from rasp_programs.spec import ProgramSpec, Task


def _check(programs: tuple[ProgramSpec, ...]) -> None:
    """Registration-time invariants: unique names, one ``Task`` per task name, outputs match."""
    names = [p.name for p in programs]
    if len(set(names)) != len(names):
        raise ValueError(f"program names must be unique: {names}")
    tasks: dict[str, Task] = {}
    for p in programs:
        if tasks.setdefault(p.task.name, p.task) is not p.task:
            raise ValueError(f"two different tasks are called {p.task.name!r}")
        if not p.variables or p.variables[-1].name != p.task.output:
            raise ValueError(f"program '{p.name}' must end with its task's output variable {p.task.output!r}")
        if p.task.default_max_len > p.max_supported_len:
            raise ValueError(f"program '{p.name}' does not support its task's default length")


_ALL = (*miu_programs.PROGRAMS, miu_scan.MIU_MOD3, HIST, SORT)
_check(_ALL)
PROGRAMS: dict[str, ProgramSpec] = {p.name: p for p in _ALL}
TASKS: dict[str, Task] = {p.task.name: p.task for p in _ALL}


def get_program(name: str) -> ProgramSpec:
    """Looks a program up by name; raises ``ToolkitError`` listing the known ones."""
    if name in PROGRAMS:
        return PROGRAMS[name]
    if name.partition(".")[0] in automata.TASKS:
        return automaton_programs.candidate(name)
    raise ToolkitError(f"unknown program {name!r}; known programs: {', '.join(sorted(PROGRAMS))}; "
                       f"automaton tasks (or <task>.<construction>): {', '.join(sorted(automata.TASKS))}")


def get_task(name: str) -> Task:
    """Looks a task up by name; raises ``ToolkitError`` listing the known ones."""
    if name in TASKS:
        return TASKS[name]
    if name in automata.TASKS:
        return automata.TASKS[name]
    raise ToolkitError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}; "
                       f"automaton tasks: {', '.join(sorted(automata.TASKS))}")


def task_programs(task: str | Task) -> tuple[ProgramSpec, ...]:
    """Every registered program that solves ``task`` (a name or a ``Task``), in registration order."""
    task = get_task(task) if isinstance(task, str) else task
    if automata.TASKS.get(task.name) is task:
        return automaton_programs.derive(task.name).candidates
    return tuple(p for p in _ALL if p.task is task)


AUTO = "auto"


def derived_candidates(program: str) -> tuple[str, ...]:
    """``HYPOTHESES=auto``: every candidate derived from the automaton of ``program``'s task, in order.

    Raises:
        ToolkitError: unknown program, or its task has no automaton.
    """
    task = get_program(program).task
    if automata.TASKS.get(task.name) is not task:
        raise ToolkitError(f"HYPOTHESES=auto derives candidates from an automaton, and task {task.name!r} (of "
                           f"program {program!r}) has none; automaton tasks: {', '.join(sorted(automata.TASKS))}")
    return tuple(p.name for p in automaton_programs.derive(task.name).candidates)


def expand_hypotheses(program: str, names: list[str]) -> list[str]:
    """``["auto"]`` -> ``derived_candidates(program)``; any other list unchanged ("auto" must stand alone)."""
    if AUTO not in names:
        return list(names)
    if names != [AUTO]:
        raise ToolkitError(f"HYPOTHESES=auto stands alone; got {' '.join(names)!r}")
    return list(derived_candidates(program))


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
