"""MU-GPT: the language-model objective, its stop rule and its evaluation.

A GPT of the compiled shape learns to continue the program's members
(``learned.lm_data``: MIU theorems only, held-out ones never emitted). Its
verdicts are read from its next-token probabilities (``learned.lm``).

Checks (every ``check_every`` steps, at logging points) record, with the
readout chosen on the training data at that moment:

  * ``P(impossible)`` and ``P(END | impossible)``; for MIU ``P(MU) =
    P(M | BOS) P(U | M) P(END | MU)``;
  * the acceptance of the held-out members and of the training strings;
  * ``train_fit``: whether both thresholds separate every training event.

Moments (``metrics.json`` -> ``moments``; step and seconds each):

  * ``mu_below``: the first check with ``P(END | impossible) < epsilon``,
    whatever else holds. ``MU`` is a short, common prefix, so this can come
    long before the model has the rule;
  * ``mu_below_held_out``: the first check where also every held-out member
    is accepted (the issue's two conditions);
  * ``stop``: the stop rule. The two conditions above, and, with
    ``stop_requires_fit`` (default), the readout separates the training data,
    so that "accepted" means something: a readout that cannot tell the
    training events apart accepts held-out strings for no reason. The run
    stops there and that checkpoint is the model.

The final evaluation scores the verdict at every prefix of every input
(exhaustive for MIU at length 10) with ``learned.evaluate.evaluate``, adds
the AUROC of ``P(END | prefix)`` on well-formed prefixes, held-out and
training acceptance, and the same checks on every written checkpoint.
"""

from __future__ import annotations

import statistics
from typing import Any, Callable

import torch
from sklearn.metrics import roc_auc_score

from learned.artifact import encode
from learned.checkpoints import Snapshots
from learned.evaluate import EvalSet, evaluate
from learned.lm import Readout, choose_readout, log_probs, string_probability, training_events, verdicts_from
from learned.lm_data import LMConfig, build_lm_data, lm_model_config, split_targets
from learned.model import ModelConfig, Transformer
from learned.objective import Objective
from rasp_programs.errors import ToolkitError
from rasp_programs.spec import ProgramSpec, Tokens

MOMENTS = ("mu_below", "mu_below_held_out", "stop")


class LanguageModel(Objective):
    """The language-model objective (module docstring).

    Args:
        spec: the program; must have a ``language``.
        model_cfg: the compiled shape (its output vocabulary is replaced by tokens + END).
        lm: the objective's settings.
        cut: longest training string.
        data_seed: data seed.
        train_size: the finite regime's number of training strings (``None``: streaming).
        es: the evaluation set, labelled with the program's verdicts.
    """

    name = "lm"
    checks_always = True

    def __init__(self, spec: ProgramSpec, model_cfg: ModelConfig, lm: LMConfig, cut: int, data_seed: int,
                 train_size: int | None, es: EvalSet):
        if spec.language is None:
            raise ToolkitError(f"program '{spec.name}' has no language (ProgramSpec.language); "
                               f"--objective lm needs one")
        if set(map(str, (False, True))) - set(es.output_vocab):
            raise ToolkitError(f"program '{spec.name}' does not output a True/False verdict per prefix; "
                               f"--objective lm cannot be scored against it")
        self.language, self.lm, self.es = spec.language, lm, es
        self.end = self.language.end_token
        self.model_cfg = lm_model_config(model_cfg, self.language)
        self.lm_data = build_lm_data(self.language, self.model_cfg, cut, lm, data_seed, train_size)
        self.table = self.lm_data.table
        self.events = training_events(self.lm_data.train, self.lm_data.masked, self.language.alphabet)
        self.held = sorted(self.lm_data.held_out, key=lambda s: (len(s), s))
        wf = self.language.well_formed or (lambda x: False)
        self.well_formed = torch.tensor([wf(x) for x in es.inputs])  # [N]
        self.member = torch.tensor([self.language.is_member(x) for x in es.inputs])  # [N]
        self.cover = _covering_rows(es)  # [N]: a row whose first positions are input i's prefixes
        self.moments: dict[str, dict[str, Any] | None] = {m: None for m in MOMENTS}

    # -- the loop's hooks --------------------------------------------------------------

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy, with the left-out outputs out of the softmax (``learned.lm_data``)."""
        ids, exclude = split_targets(targets)  # [B, T], [B, T, O]
        return super().loss(logits.masked_fill(exclude, float("-inf")), ids)

    @property
    def finished(self) -> bool:
        return self.moments["stop"] is not None

    def check(self, model: Transformer, step: int, seconds: Callable[[], float]) -> tuple[dict[str, Any], bool]:
        record = {"step": step, **self.probe(model)}
        record["seconds"] = seconds()
        eps = self.lm.stop_when_mu_below
        below = record["p_end_impossible"] < eps
        held = record["held_out_acceptance"] == 1.0
        fit = record["train_fit"] or not self.lm.stop_requires_fit
        for name, hit in (("mu_below", below), ("mu_below_held_out", below and held), ("stop", below and held and fit)):
            if hit and self.moments[name] is None:
                self.moments[name] = {k: record[k] for k in ("step", "seconds", "p_impossible", "p_end_impossible",
                                                              "held_out_acceptance", "train_acceptance", "train_fit")}
        return record, below and held and fit

    def evaluate(self, model: Transformer, snapshots: Snapshots, steps: list[int],
                 checks: list[dict[str, Any]]) -> dict[str, Any]:
        out = self.full_evaluation(model, report=True)
        shell = Transformer(model.cfg)
        out["checkpoints"] = []
        for step in steps:
            shell.load_tl_state_dict(snapshots.weights[step])
            out["checkpoints"].append({"step": step, **self.full_evaluation(shell)})
        out["moments"] = self.moments
        out["dynamics"] = dynamics(checks, self.lm.stop_when_mu_below)
        out["reached_100"] = self.moments["stop"]
        return out

    def stop_moment(self) -> dict[str, Any] | None:
        return self.moments["stop"]

    def artifact_meta(self, model: Transformer) -> dict[str, Any]:
        readout, _ = choose_readout(model, self.events, self.end)
        return {"objective": "lm", "readout": readout.to_json()}

    def data(self) -> dict[str, Any]:
        return self.lm_data.description

    def state(self) -> dict[str, Any]:
        return {"moments": self.moments}

    def load_state(self, state: dict[str, Any]) -> None:
        self.moments = {m: state.get("moments", {}).get(m) for m in MOMENTS}

    # -- measurements ----------------------------------------------------------------

    def verdicts(self, model: Transformer, strings: list[Tokens], readout: Readout) -> torch.Tensor:
        """``[N]`` whether each string is accepted as a whole (the verdict at its last position)."""
        if not strings:
            return torch.zeros(0, dtype=torch.bool)
        ids = encode(model.cfg, strings)
        v = verdicts_from(model.cfg, log_probs(model, ids), ids, readout)  # [N, T]
        return v[torch.arange(len(strings)), torch.tensor([len(s) for s in strings])]

    def probe(self, model: Transformer) -> dict[str, Any]:
        """The cheap measurements of a check (training data, held-out set, the impossible string)."""
        readout, fit = choose_readout(model, self.events, self.end)
        p, p_end = string_probability(model, self.language.impossible, self.end)
        held = self.verdicts(model, self.held, readout)
        return {"p_impossible": p, "p_end_impossible": p_end,
                "held_out_acceptance": float(held.float().mean()) if len(held) else 1.0,
                "train_acceptance": float(self.verdicts(model, self.lm_data.train, readout).float().mean()),
                "train_fit": fit["end"]["separated"] and fit["token"]["separated"],
                "tau_token": readout.tau_token, "tau_end": readout.tau_end}

    def full_evaluation(self, model: Transformer, report: bool = False) -> dict[str, Any]:
        """The recogniser at every prefix of every evaluation input, and the probe.

        With ``report``: every input is run, for the readout, the full
        ``learned.evaluate`` breakdown and the rejected held-out strings.
        Otherwise (checkpoints) only the covering rows are run: the model is
        causal, so the verdicts on a longest input's prefixes are those of the
        shorter inputs, and the headline numbers come out the same.
        """
        readout, fit = choose_readout(model, self.events, self.end)
        es, wf = self.es, self.well_formed
        rows = torch.arange(len(es.inputs)) if report else self.cover.unique()
        logp = log_probs(model, es.ids[rows])  # [R, T, O]
        verdicts = verdicts_from(model.cfg, logp, es.ids[rows], readout)  # [R, T]
        index = {v: i for i, v in enumerate(es.output_vocab)}
        pred = torch.where(verdicts, index["True"], index["False"])  # [R, T]
        tgt = es.targets[rows]
        ok_so_far = ((pred == tgt) | (tgt < 0)).int().cummin(1).values.bool()  # [R, T]
        at = torch.searchsorted(rows, self.cover)  # [N]: each input's covering row among ``rows``
        right = ok_so_far[at, es.lengths]  # [N]
        p_end = logp[at, es.lengths, model.cfg.output_vocab.index(self.end)]  # [N]
        short = wf & (es.lengths < es.max_len)
        out = {**self.probe(model), "sequence_accuracy": float(right.float().mean()),
               "well_formed_accuracy": float(right[wf].float().mean()) if wf.any() else None,
               "end_auroc": _auroc(self.member[wf], p_end[wf]),
               "end_auroc_below_max_len": _auroc(self.member[short], p_end[short])}
        if report:
            held = self.verdicts(model, self.held, readout)
            out = {"readout": readout.to_json(), "readout_fit": fit, "evaluation": evaluate(model, es, pred=pred),
                   **out, "well_formed_strings": int(wf.sum()), "impossible": " ".join(self.language.impossible),
                   "held_out": {"strings": len(self.held),
                                "rejected_first": [" ".join(s) for s, ok in zip(self.held, held.tolist()) if not ok][:10]}}
        return out


def _covering_rows(es: EvalSet) -> torch.Tensor:
    """``[N]``: for each input, a longest input that starts with it (itself where there is none)."""
    if not (es.spec.causal and es.exhaustive):
        return torch.arange(len(es.inputs))
    index = {x: i for i, x in enumerate(es.inputs)}
    filler = es.spec.vocab[0]
    return torch.tensor([index[tuple(x) + (filler,) * (es.max_len - len(x))] for x in es.inputs])


def _auroc(labels: torch.Tensor, scores: torch.Tensor) -> float | None:
    """ROC AUC of ``scores`` for boolean ``labels``; ``None`` when one class is absent."""
    if not 0 < int(labels.sum()) < len(labels):
        return None
    return float(roc_auc_score(labels.numpy(), scores.double().numpy()))


def summary_line(m: dict[str, Any]) -> str:
    """One line per seed for the terminal."""
    mo = m["moments"]

    def at(name: str) -> str:
        x = mo.get(name)
        return f"step {x['step']} ({x['seconds']:.1f} s)" if x else "never"

    ev = m["evaluation"]
    impossible = m["impossible"].replace(" ", "")  # the language's declared string (MIU: MU)
    return (f"stop rule {at('stop')}; P(END|{impossible}) < eps first at {at('mu_below')}; "
            f"P({impossible}) {m['p_impossible']:.2e}, P(END|{impossible}) {m['p_end_impossible']:.2e}; "
            f"recogniser all-prefix {100 * ev['sequence_accuracy']:.2f}% of {ev['inputs']} "
            f"(well-formed {100 * (m['well_formed_accuracy'] or 0):.2f}%); held-out accepted "
            f"{100 * m['held_out_acceptance']:.1f}% of {m['held_out']['strings']}; AUROC(P(END)) "
            f"{m['end_auroc'] if m['end_auroc'] is None else round(m['end_auroc'], 4)}")


# -- command line ---------------------------------------------------------------------


def add_arguments(ap) -> None:
    """The ``--objective lm`` flags of ``python -m learned`` (strings; checked by ``lm_config``)."""
    g = ap.add_argument_group("language-model objective (--objective lm)")
    g.add_argument("--sampler", default=None, help="length (length-controlled, default) or derivations")
    g.add_argument("--q", default=None, help="end probability at a theorem prefix, in (0, 1) (default 0.25)")
    g.add_argument("--held-out-share", default=None, help="share of theorems never trained on, in [0, 1)")
    g.add_argument("--held-out-seed", default=None, help="seed of the held-out split (default 0, every model seed)")
    g.add_argument("--derive-bound", default=None, help="longest intermediate string of a derivation")
    g.add_argument("--derive-walks", default=None, help="random derivations (sampler derivations)")
    g.add_argument("--derive-steps", default=None, help="rewrites per derivation")
    g.add_argument("--stop-when-mu-below", default=None,
                   help="stop when P(END | the language's impossible string, MU for MIU) < this and every held-out "
                        "member is accepted (default 1e-3)")
    g.add_argument("--no-mask-held-out", action="store_true",
                   help="train at positions whose prefix is a held-out theorem (implicit 'no END here')")
    g.add_argument("--no-stop-fit", action="store_true",
                   help="stop rule without requiring the readout to separate the training data")


def _number(text: str, what: str, kind=float):
    try:
        return kind(str(text).strip())
    except ValueError:
        raise ToolkitError(f"{what} must be a {'number' if kind is float else 'non-negative integer'}, "
                           f"got {text!r}") from None


def lm_config(args, max_len: int) -> LMConfig:
    """``LMConfig`` from the parsed flags; one-line errors for bad values."""
    kw: dict[str, Any] = {}
    for name, kind in (("sampler", str), ("q", float), ("held_out_share", float), ("held_out_seed", int),
                       ("derive_bound", int), ("derive_walks", int), ("derive_steps", int),
                       ("stop_when_mu_below", float)):
        raw = getattr(args, name, None)
        if raw is not None:
            kw[name] = raw if kind is str else _number(raw, "--" + name.replace("_", "-"), kind)
    for name in ("held_out_seed", "derive_walks", "derive_steps"):
        if kw.get(name, 0) < 0:
            raise ToolkitError(f"--{name.replace('_', '-')} must be a non-negative integer, got {kw[name]}")
    kw["mask_held_out"] = not getattr(args, "no_mask_held_out", False)
    kw["stop_requires_fit"] = not getattr(args, "no_stop_fit", False)
    return LMConfig(**kw).check(max_len)


def summary_over_seeds(runs: list[dict[str, Any]]) -> str:
    """Lines for several seeds: how many met every target, and the moments' spread."""
    exact = [m for m in runs if m["evaluation"]["wrong_inputs"] == 0 and m["held_out_acceptance"] == 1.0
             and m["moments"]["stop"] is not None]
    lines = [f"summary over {len(runs)} seeds: {len(exact)} with the stop rule met, every held-out theorem "
             f"accepted and the recogniser right at every prefix"]
    for name in ("stop", "mu_below"):
        hit = [m["moments"][name] for m in runs if m["moments"][name] is not None]
        if hit:
            lines.append(f"  {name}: median step {statistics.median(h['step'] for h in hit):.0f}, "
                         f"median {statistics.median(h['seconds'] for h in hit):.1f} s ({len(hit)} seeds)")
    return "\n".join(lines)


def first_stable(checks: list[dict[str, Any]], holds: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first check where ``holds`` is true, and the first from which it stays true to the end."""
    first = next((c["step"] for c in checks if holds(c)), None)
    stable = None
    for c in reversed(checks):
        if not holds(c):
            break
        stable = c["step"]
    return {"first": first, "stays_from": stable}


def dynamics(checks: list[dict[str, Any]], eps: float) -> dict[str, Any]:
    """When training acceptance, held-out acceptance and the rejection of the impossible string set in.

    For the grokking question: does held-out acceptance reach 1 long after
    training acceptance does, and where does ``P(END | MU)`` fall relative to both.
    """
    out = {"train_accepted": first_stable(checks, lambda c: c["train_acceptance"] == 1.0),
           "held_out_accepted": first_stable(checks, lambda c: c["held_out_acceptance"] == 1.0),
           "impossible_ruled_out": first_stable(checks, lambda c: c["p_end_impossible"] < eps),
           "train_fit": first_stable(checks, lambda c: c["train_fit"])}
    t, h = out["train_accepted"]["stays_from"], out["held_out_accepted"]["stays_from"]
    out["held_out_after_train_ratio"] = round(h / t, 2) if t and h else None
    return out
