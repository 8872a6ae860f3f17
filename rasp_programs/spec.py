"""What a task and a registered program are: everything later stages need, as data.

A ``Task`` fixes what is computed: the vocabulary, the lengths, whether the
output is emitted per prefix (causal), the name of the output variable and an
independent ``reference``. It also carries what every program of the task
shares downstream: how training inputs are drawn (``DataMix``), extra checks of
a model's outputs (``Check``, e.g. MIU's rewrite system), a per-input clause
breakdown for evaluation, and probe strings for training dynamics.

A ``ProgramSpec`` is one way to solve a task. It bundles
  * ``task``: the task it solves (several programs may share one);
  * ``build``: a function returning the Tracr RASP program (Tracr is imported
    only when it is called, so training and comparing never import it);
  * the largest length at which it compiles exactly;
  * ``variables``: a plain-Python causal model with one entry per named SOp,
    used as an independent implementation in tests and by ``compare/`` for
    interchange interventions (set a variable, recompute what depends on it).

Shapes: a token sequence is a tuple of strings of length T; every variable
maps it to a list of T values, one per position.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Any, Callable, Iterator, Mapping, Sequence

import networkx as nx
import numpy as np

from rasp_programs.errors import ToolkitError
from rasp_programs.language import Language

Tokens = tuple[str, ...]
ENCODINGS = ("categorical", "numerical")


@dataclasses.dataclass(frozen=True)
class Variable:
    """One named SOp of the program, computed in plain Python.

    Attributes:
        name: the name given to the SOp with ``.named(...)``; residual labels
            of the compiled model are ``name:value`` (categorical) or ``name``
            (numerical: one direction holding the value).
        parents: names of the inputs: ``"tokens"``, ``"indices"`` or earlier
            variables.
        fn: maps the parents' per-position value lists to this variable's list.
        doc: one line a researcher reads in the report.
        encoding: ``"categorical"`` (one value out of a set) or ``"numerical"``
            (a number, e.g. a fraction from a mean-attention head), as in RASP.
    """

    name: str
    parents: tuple[str, ...]
    fn: Callable[..., list]
    doc: str
    encoding: str = "categorical"

    def __post_init__(self):
        if self.encoding not in ENCODINGS:
            raise ValueError(f"variable {self.name!r}: encoding must be one of {ENCODINGS}, got {self.encoding!r}")


# -- what a task shares across its programs -----------------------------------

Pools = Callable[[np.random.Generator, Sequence[str], int, int], dict[str, list[Tokens]]]


def uniform_inputs(rng: np.random.Generator, vocab: Sequence[str], n: int, max_len: int) -> list[Tokens]:
    """``n`` uniform random inputs with uniform random lengths 1..max_len."""
    lengths = rng.integers(1, max_len + 1, size=n)
    return [tuple(rng.choice(vocab, size=int(k))) for k in lengths]


def narrow_inputs(rng: np.random.Generator, vocab: Sequence[str], n: int, max_len: int) -> list[Tokens]:
    """``n`` inputs over a random sub-alphabet of 1..|vocab| letters each, so repeats are common."""
    out = []
    for k in rng.integers(1, max_len + 1, size=n):
        letters = rng.choice(vocab, size=int(rng.integers(1, len(vocab) + 1)), replace=False)
        out.append(tuple(rng.choice(letters, size=int(k))))
    return out


def generic_pools(rng: np.random.Generator, vocab: Sequence[str], max_len: int, size: int) -> dict[str, list[Tokens]]:
    """``uniform`` and ``narrow`` pools of ``size`` inputs each."""
    return {"uniform": uniform_inputs(rng, vocab, size, max_len), "narrow": narrow_inputs(rng, vocab, size, max_len)}


@dataclasses.dataclass(frozen=True)
class DataMix:
    """How training inputs are drawn for a task (``learned.data`` builds the table).

    Attributes:
        pools: ``(rng, vocab, max_len, size) -> {pool name: inputs}``: named
            pools of inputs of length 1..max_len, about ``size`` each.
        shares: ``((pool name, share of draws), ...)`` before label balancing.
        balance_final: reweight rows so every final-position output class gets
            the same share of draws.
        held_out: pools whose inputs replace about half of a uniform held-out
            evaluation sample when the input space is too large to enumerate
            (empty: uniform only).
    """

    pools: Pools
    shares: tuple[tuple[str, float], ...]
    balance_final: bool = False
    held_out: tuple[str, ...] = ()

    def share(self, pool: str) -> float:
        """Share of draws for ``pool``; raises ``ToolkitError`` for a pool the mix does not name."""
        for name, value in self.shares:
            if name == pool:
                return value
        raise ToolkitError(f"data pool {pool!r} has no share; the mix names {[n for n, _ in self.shares]}")


GENERIC_MIX = DataMix(pools=generic_pools, shares=(("uniform", 0.5), ("narrow", 0.5)))


@dataclasses.dataclass(frozen=True)
class Check:
    """A check of a model's outputs beyond the per-position reference (e.g. MIU's rewrite system).

    Attributes:
        name: key of its result in ``verify.json``.
        run: ``(outputs, max_len) -> result``. ``outputs`` maps each checked
            input to the model's decoded output at every position (strings);
            the result is a JSON-ready dict with at least ``passed`` (bool) and
            ``summary`` (one line for the terminal).
        doc: one line.
    """

    name: str
    run: Callable[[Mapping[Tokens, Sequence[str]], int], dict[str, Any]]
    doc: str


@dataclasses.dataclass(frozen=True)
class Task:
    """What is computed, shared by every program that solves it.

    Attributes:
        name: the task's name (``miu``).
        description: one line.
        vocab: input tokens.
        default_max_len: the length ``make`` uses when ``MAX_LEN`` is empty.
        causal: outputs at position i depend on positions <= i only (then a
            program's selectors look at keys ``k <= q``).
        output: name of the output variable; every program of the task ends
            with a variable of this name.
        reference: an independent implementation of the output, per position.
        data: how training inputs are drawn.
        checks: extra checks of a model's outputs, run by ``compiled.verify``.
        clauses: ``tokens -> {clause: value}``: evaluation reports accuracy per
            value of each clause (MIU: starts with ``M``, ``I`` count mod 3,
            the deciding clause); ``None``: no breakdown.
        probes: inputs (one character per token) whose probability of
            ``probe_output`` at the last position training dynamics tracks.
        probe_output: the output value the probes track.
        exact_within_s: ``learned.bench`` target: 100% in at least 4 of 5
            seeds, median time under this many seconds on a 2-core CPU;
            ``None``: at least 99.9% on every seed.
        language: the task's positive strings as data, for training a
            language model on members only (``rasp_programs.language``;
            MU-GPT); ``None``: the task has none.
    """

    name: str
    description: str
    vocab: tuple[str, ...]
    default_max_len: int
    causal: bool
    output: str
    reference: Callable[[Tokens], list]
    data: DataMix = GENERIC_MIX
    checks: tuple[Check, ...] = ()
    clauses: Callable[[Tokens], Mapping[str, Any]] | None = None
    probes: tuple[str, ...] = ()
    probe_output: str = "True"
    exact_within_s: float | None = None
    language: Language | None = None


@dataclasses.dataclass(frozen=True)
class ProgramSpec:
    """A registered program: one way to solve ``task`` (see module docstring)."""

    name: str
    description: str
    task: Task
    max_supported_len: int
    build: Callable[[], Any]
    variables: tuple[Variable, ...]

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.task.vocab

    @property
    def default_max_len(self) -> int:
        return self.task.default_max_len

    @property
    def causal(self) -> bool:
        return self.task.causal

    @property
    def language(self) -> Language | None:
        """The task's members as data (``Task.language``), for the language-model objective."""
        return self.task.language

    @property
    def output(self) -> str:
        """Name of the output variable (the task's; the program's last variable)."""
        return self.task.output

    @functools.cached_property
    def graph(self) -> nx.DiGraph:
        """The computation graph: an edge from each parent (inputs included) to each variable."""
        g = nx.DiGraph()
        g.add_nodes_from(v.name for v in self.variables)
        g.add_edges_from((p, v.name) for v in self.variables for p in v.parents)
        return g

    def ancestors(self, name: str) -> set[str]:
        """The variables ``name`` is computed from (directly or not); inputs excluded."""
        return nx.ancestors(self.graph, name) & {v.name for v in self.variables}

    def descendants(self, name: str) -> set[str]:
        """The variables computed (directly or not) from ``name``."""
        return nx.descendants(self.graph, name)

    def reference(self, tokens: Tokens) -> list:
        """The task's independent reference output at every position."""
        return self.task.reference(tokens)

    def variable(self, name: str) -> Variable:
        """The variable called ``name``; raises ``ToolkitError`` listing the known ones."""
        for var in self.variables:
            if var.name == name:
                return var
        raise ToolkitError(f"program '{self.name}' has no variable {name!r}; "
                           f"its variables: {', '.join(v.name for v in self.variables)}")

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
        return uniform_inputs(rng, self.vocab, n, max_len)

    def evaluation_inputs(self, max_len: int, limit: int, seed: int = 0) -> tuple[list[Tokens], bool]:
        """All inputs if there are at most ``limit``, else a seeded sample of ``limit``.

        Returns:
            (inputs, exhaustive)
        """
        if self.num_inputs(max_len) <= limit:
            return list(self.enumerate_inputs(max_len)), True
        return self.sample_inputs(np.random.default_rng(seed), limit, max_len), False
