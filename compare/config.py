"""``CompareConfig``: the sample sizes and seeds of one comparison, saved in ``compare.json``."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """Sample sizes and seeds of one comparison (saved in ``compare.json``)."""

    seed: int = 0
    n_inputs: int = 3000        # sampled strings (all inputs if there are fewer)
    folds: int = 3              # GroupKFold folds: test, validation, fit
    probe_iter: int = 200       # iterations of the logistic probes
    n_untrained: int = 3        # untrained networks behind the readout baseline
    n_fit: int = 200            # effective pairs per variable: DAS training
    n_val: int = 150            # ... selection
    n_test: int = 300           # ... reported
    das_steps: int = 30
    das_lr: float = 0.05
    das_dims: tuple[int, ...] = (1, 4, 16)  # the sweep at the chosen hook
    das_restarts: int = 3       # DAS starts per dimension: pattern basis, probe (or logit) direction, random
    search_das: bool = True     # also try DAS at every hook searched where the pattern swap falls short
    n_null: int = 20            # random subspaces in the null
    n_examples: int = 3
    ablation_modes: tuple[str, ...] = ("zero", "mean", "resample")
    control_task: bool = True   # the Hewitt & Liang baseline at the chosen hook
    well_formed_only: bool = False  # only rows on which the task's language is well formed (language models)

    @classmethod
    def fast(cls, seed: int = 0) -> "CompareConfig":
        """Cheap setting for many checkpoints (training dynamics)."""
        return cls(seed=seed, n_inputs=1200, probe_iter=100, n_untrained=1, n_fit=120, n_val=80, n_test=150,
                   das_steps=15, das_dims=(), das_restarts=1, search_das=False, n_null=10, ablation_modes=("mean",),
                   control_task=False)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["das_dims"], d["ablation_modes"] = list(self.das_dims), list(self.ablation_modes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CompareConfig":
        d = {k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}}
        for k in ("das_dims", "ablation_modes"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)
