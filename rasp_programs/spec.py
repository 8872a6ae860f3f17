"""What a registered program is: everything later stages need, as data.

A ``ProgramSpec`` bundles
  * ``build``: a function returning the Tracr RASP program (Tracr is imported
    only when it is called, so training and comparing never import it);
  * the vocabulary, default and largest supported maximum length;
  * ``variables``: a plain-Python causal model with one entry per named SOp,
    used as an independent implementation in tests and by ``compare/`` for
    interchange interventions (set a variable, recompute what depends on it);
  * ``reference``: an independent reference for the program's output;
  * ``language`` (optional): the program's positive strings as data, for
    training a language model on members only (``rasp_programs.language``).

Shapes: a token sequence is a tuple of strings of length T; every variable
maps it to a list of T values, one per position.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from rasp_programs.errors import ToolkitError
from rasp_programs.language import Language

Tokens = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Variable:
    """One named SOp of the program, computed in plain Python.

    Attributes:
        name: the name given to the SOp with ``.named(...)``; residual labels
            of the compiled model are ``name:value``.
        parents: names of the inputs: ``"tokens"``, ``"indices"`` or earlier
            variables.
        fn: maps the parents' per-position value lists to this variable's list.
        doc: one line a researcher reads in the report.
    """

    name: str
    parents: tuple[str, ...]
    fn: Callable[..., list]
    doc: str


@dataclasses.dataclass(frozen=True)
class ProgramSpec:
    """A registered program (see module docstring)."""

    name: str
    description: str
    vocab: tuple[str, ...]
    default_max_len: int
    max_supported_len: int
    causal: bool
    build: Callable[[], Any]
    variables: tuple[Variable, ...]
    reference: Callable[[Tokens], list]
    language: Language | None = None

    @property
    def output(self) -> str:
        """Name of the output variable (the last one)."""
        return self.variables[-1].name

    def check_max_len(self, max_len: int) -> int:
        """Returns ``max_len`` or raises ``ToolkitError`` if it is out of range."""
        if not isinstance(max_len, int) or isinstance(max_len, bool):
            raise ToolkitError(f"MAX_LEN must be an integer, got {max_len!r}")
        if not 1 <= max_len <= self.max_supported_len:
            raise ToolkitError(
                f"MAX_LEN={max_len} is out of range for program '{self.name}' "
                f"(1..{self.max_supported_len})"
            )
        return max_len

    def check_tokens(self, tokens: Sequence[str], max_len: int) -> Tokens:
        """Validates one input; raises ``ToolkitError`` naming the problem."""
        tokens = tuple(tokens)
        bad = [t for t in tokens if t not in self.vocab]
        if bad:
            raise ToolkitError(
                f"token {bad[0]!r} is not in the vocabulary of '{self.name}' {list(self.vocab)}"
            )
        if len(tokens) > max_len:
            raise ToolkitError(
                f"input of length {len(tokens)} is longer than the model's maximum {max_len}"
            )
        if not tokens:
            raise ToolkitError("input is empty")
        return tokens

    def parse(self, text: str, max_len: int) -> Tokens:
        """Splits user text into tokens: characters, or words if any token is longer."""
        words = text.split() if any(len(t) > 1 for t in self.vocab) else list(text.strip())
        return self.check_tokens(words, max_len)

    def run(self, tokens: Sequence[str],
            interventions: Mapping[str, Mapping[int, Any]] | None = None) -> dict[str, list]:
        """Runs the causal model, optionally with some variables set by hand.

        Args:
            tokens: one input.
            interventions: ``{variable: {position: value}}``; each listed value
                replaces the computed one before anything downstream reads it.

        Returns:
            ``{"tokens", "indices", *variable names}`` to per-position lists.
        """
        values: dict[str, list] = {"tokens": list(tokens), "indices": list(range(len(tokens)))}
        interventions = interventions or {}
        unknown = set(interventions) - {v.name for v in self.variables}
        if unknown:
            raise ToolkitError(f"unknown variable(s) {sorted(unknown)} for '{self.name}'")
        for var in self.variables:
            out = list(var.fn(*(values[p] for p in var.parents)))
            for pos, value in interventions.get(var.name, {}).items():
                out[pos] = value
            values[var.name] = out
        return values

    def enumerate_inputs(self, max_len: int) -> Iterator[Tokens]:
        """Every input of every length 1..max_len, shortest first."""
        for n in range(1, max_len + 1):
            yield from itertools.product(self.vocab, repeat=n)

    def num_inputs(self, max_len: int) -> int:
        return sum(len(self.vocab) ** n for n in range(1, max_len + 1))

    def sample_inputs(self, rng: np.random.Generator, n: int, max_len: int) -> list[Tokens]:
        """``n`` uniform random inputs with uniform random lengths 1..max_len."""
        lengths = rng.integers(1, max_len + 1, size=n)
        return [tuple(rng.choice(self.vocab, size=int(k))) for k in lengths]

    def evaluation_inputs(self, max_len: int, limit: int, seed: int = 0) -> tuple[list[Tokens], bool]:
        """All inputs if there are at most ``limit``, else a seeded sample of ``limit``.

        Returns:
            (inputs, exhaustive)
        """
        if self.num_inputs(max_len) <= limit:
            return list(self.enumerate_inputs(max_len)), True
        return self.sample_inputs(np.random.default_rng(seed), limit, max_len), False
