"""One transformer class for compiled, learned and imported weights.

By default the shape Tracr compiles to: no layer norm, ReLU MLPs, scaled
dot-product attention, an optional causal mask and a key mask for padding.
The config can add GPT-2's parts (``learned.layers``): pre-LayerNorm
(``ln1``/``ln2`` per block and ``ln_final``), GELU MLPs, a tied unembedding
and ``scale_attn_by_inverse_layer_idx``. A key missing from an old
``model.json`` means the old architecture. Parameters use TransformerLens
names and shapes, so the state dict *is* the artifact (``model.safetensors``).

Shape glossary:
    B batch, T positions (BOS included), D d_model, H n_heads, K d_head,
    M d_mlp, V d_vocab, O d_vocab_out.

Hook points (TransformerLens names), each addressable by name for caching
and interventions:
    hook_embed, hook_pos_embed                              [B, T, D]
    blocks.{l}.hook_resid_pre / hook_resid_mid / hook_resid_post  [B, T, D]
    blocks.{l}.attn.hook_pattern                            [B, H, T, T]
    blocks.{l}.attn.hook_z                                  [B, T, H, K]
    blocks.{l}.attn.hook_result                             [B, T, H, D]
    blocks.{l}.hook_attn_out, blocks.{l}.hook_mlp_out       [B, T, D]
    blocks.{l}.mlp.hook_post                                [B, T, M]
  with layer norm (``normalization_type="LN"``), also
    blocks.{l}.ln1.hook_scale / ln2.hook_scale, ln_final.hook_scale  [B, T, 1]
    blocks.{l}.ln1.hook_normalized / ln2..., ln_final.hook_normalized [B, T, D]
  (the residual hooks stay where they were: ``hook_resid_pre`` is read
  *before* ``ln1``, and the logits are read through ``ln_final``).
A hook is ``fn(tensor, name) -> tensor | None``; returning a tensor replaces
the activation (an intervention), ``None`` leaves it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from learned.layers import ACTIVATIONS, NORMALIZATIONS, layer_norm

Hook = Callable[[torch.Tensor, str], "torch.Tensor | None"]


@functools.cache
def _has_onednn_linear() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """``x @ w.T + b`` (``F.linear``'s convention, ``w`` is ``[out, in]``), optionally ReLU'd.

    Without autograd, on CPU in float32, this goes through oneDNN's matmul
    (the kernel Inductor uses) instead of ``F.linear``'s MKL sgemm: for the
    skinny shapes here (``[B*T, 64] @ [64, 121]``) MKL ran 2.5-4x slower on
    the 2-core AMD EPYC machine this was built on (see ``compiled.bench``). Training,
    float64 and GPUs keep ``F.linear``; a test checks the two paths agree.
    """
    if (not torch.is_grad_enabled() and x.device.type == "cpu" and x.dtype == torch.float32
            and _has_onednn_linear()):
        return torch.ops.mkldnn._linear_pointwise(x, w, b, "relu" if relu else "none", [], "")
    y = F.linear(x, w, b)
    return y.relu_() if relu else y


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape and vocabularies; saved as ``config`` in ``model.json``.

    ``vocab`` holds the input token strings in id order (BOS and pad
    included); ``output_vocab`` the output values (as strings) in id order.
    The fields after ``act_fn`` are GPT-2's (TransformerLens names); their
    defaults are the Tracr architecture, and ``to_dict`` leaves them out at
    their defaults, so an old ``model.json`` reads back as what it was.

    Attributes:
        act_fn: ``relu``, ``gelu_new`` (GPT-2's tanh approximation) or ``gelu``.
        normalization_type: ``None`` or ``"LN"`` (pre-LayerNorm with weight and bias).
        eps: the layer norms' epsilon.
        tied_unembed: the unembedding is ``embed.W_E`` transposed (no ``unembed.W_U`` parameter).
        scale_attn_by_inverse_layer_idx: layer ``l``'s attention scores are also divided by ``l + 1``.
    """

    n_layers: int
    n_heads: int
    d_model: int
    d_head: int
    d_mlp: int
    n_ctx: int
    d_vocab: int
    d_vocab_out: int
    vocab: tuple[str, ...]
    output_vocab: tuple[str, ...]
    bos_token: str
    pad_token: str
    causal: bool
    act_fn: str = "relu"
    normalization_type: str | None = None
    eps: float = 1e-5
    tied_unembed: bool = False
    scale_attn_by_inverse_layer_idx: bool = False

    def __post_init__(self):
        if len(self.vocab) != self.d_vocab or len(self.output_vocab) != self.d_vocab_out:
            raise ValueError("vocab sizes disagree with d_vocab / d_vocab_out")
        if self.act_fn not in ACTIVATIONS:
            raise ValueError(f"act_fn must be one of {sorted(ACTIVATIONS)}, got {self.act_fn!r}")
        if self.normalization_type not in NORMALIZATIONS:
            raise ValueError(f"normalization_type must be one of {NORMALIZATIONS}, got {self.normalization_type!r}")
        if self.tied_unembed and self.d_vocab != self.d_vocab_out:
            raise ValueError("a tied unembedding needs d_vocab == d_vocab_out")

    @classmethod
    def from_dict(cls, d: Mapping) -> "ModelConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}")
        d = dict(d)
        d["vocab"], d["output_vocab"] = tuple(d["vocab"]), tuple(d["output_vocab"])
        return cls(**d)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["vocab"], d["output_vocab"] = list(self.vocab), list(self.output_vocab)
        for f in dataclasses.fields(self):
            if f.name in _GPT2_FIELDS and d[f.name] == f.default:
                del d[f.name]
        return d

    @property
    def layer_norm(self) -> bool:
        return self.normalization_type == "LN"

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter name with its shape: the artifact's schema."""
        H, D, K, M = self.n_heads, self.d_model, self.d_head, self.d_mlp
        shapes = {
            "embed.W_E": (self.d_vocab, D),
            "pos_embed.W_pos": (self.n_ctx, D),
            "unembed.W_U": (D, self.d_vocab_out),
            "unembed.b_U": (self.d_vocab_out,),
        }
        if self.tied_unembed:
            del shapes["unembed.W_U"]
        if self.layer_norm:
            shapes.update({"ln_final.w": (D,), "ln_final.b": (D,)})
        for l in range(self.n_layers):
            p = f"blocks.{l}."
            if self.layer_norm:
                shapes.update({p + f"{ln}.{wb}": (D,) for ln in ("ln1", "ln2") for wb in "wb"})
            shapes.update({
                p + "attn.W_Q": (H, D, K), p + "attn.W_K": (H, D, K), p + "attn.W_V": (H, D, K),
                p + "attn.b_Q": (H, K), p + "attn.b_K": (H, K), p + "attn.b_V": (H, K),
                p + "attn.W_O": (H, K, D), p + "attn.b_O": (D,),
                p + "mlp.W_in": (D, M), p + "mlp.b_in": (M,),
                p + "mlp.W_out": (M, D), p + "mlp.b_out": (D,),
            })
        return shapes

    def shape_key(self) -> str:
        """Canonical JSON of everything two comparable models must share."""
        return json.dumps(self.to_dict(), sort_keys=True)


# The hooks inside each sublayer of block ``l`` (under ``blocks.{l}.``): an empty sublayer is skipped only when
# none of them is read.
SUBLAYER_HOOKS = {
    "attn": ("ln1.hook_scale", "ln1.hook_normalized", "attn.hook_pattern", "attn.hook_z", "attn.hook_result",
             "hook_attn_out"),
    "mlp": ("ln2.hook_scale", "ln2.hook_normalized", "mlp.hook_post", "hook_mlp_out"),
}

_GPT2_FIELDS = ("normalization_type", "eps", "tied_unembed", "scale_attn_by_inverse_layer_idx")


class _Params(nn.Module):
    def __init__(self, shapes: Mapping[str, tuple[int, ...]]):
        super().__init__()
        for name, shape in shapes.items():
            self.register_parameter(name.replace(".", "__"), nn.Parameter(torch.zeros(shape)))


class Transformer(nn.Module):
    """The model. ``forward`` returns logits ``[B, T, O]``; see ``run_with_cache``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self._shapes = cfg.param_shapes()
        self.p = _Params(self._shapes)

    # -- parameters by TransformerLens name ---------------------------------
    def param(self, name: str) -> torch.Tensor:
        """The parameter of that TransformerLens name (a tied ``unembed.W_U`` is ``embed.W_E`` transposed)."""
        if name == "unembed.W_U" and self.cfg.tied_unembed:
            return self.param("embed.W_E").T
        return getattr(self.p, name.replace(".", "__"))

    def tl_state_dict(self) -> dict[str, torch.Tensor]:
        """``{TransformerLens name: tensor}``, the artifact's contents."""
        return {name: self.param(name).detach() for name in self._shapes}

    def load_tl_state_dict(self, sd: Mapping[str, torch.Tensor]) -> None:
        """Loads parameters by name; raises ``ValueError`` on a missing, extra or mis-shaped one."""
        missing, extra = set(self._shapes) - set(sd), set(sd) - set(self._shapes)
        if missing or extra:
            raise ValueError(f"parameter names differ: missing {sorted(missing)[:3]}, unexpected {sorted(extra)[:3]}")
        for name, shape in self._shapes.items():
            if tuple(sd[name].shape) != shape:
                raise ValueError(f"parameter {name} has shape {tuple(sd[name].shape)}, expected {shape}")
        with torch.no_grad():
            for name in self._shapes:
                self.param(name).copy_(sd[name])

    def init_weights(self, generator: torch.Generator) -> None:
        """Random initialisation for training (GPT-2 style normal, zero biases)."""
        with torch.no_grad():
            for name, shape in self._shapes.items():
                w = self.param(name)
                if ".b_" in name or name.endswith(".b"):  # biases, layer-norm biases
                    w.zero_()
                elif name.endswith(".w"):  # layer-norm weights
                    w.fill_(1.0)
                else:
                    fan_in = shape[-2] if len(shape) >= 2 else shape[0]
                    std = 1.0 / math.sqrt(fan_in)
                    if name.endswith(("W_O", "W_out")):
                        std /= math.sqrt(2 * self.cfg.n_layers)
                    if name in ("embed.W_E", "pos_embed.W_pos"):
                        std = 0.1  # one-hot-like inputs: keep embeddings small and D-independent
                    w.copy_(torch.randn(shape, generator=generator, dtype=w.dtype) * std)

    # -- forward --------------------------------------------------------------
    def forward(self, tokens: torch.Tensor, hooks: Mapping[str, Hook] | None = None,
                cache: dict[str, torch.Tensor] | None = None,
                cache_names: Callable[[str], bool] | None = None, skip_empty: bool = True,
                start: tuple[str, torch.Tensor] | None = None, stop_at: str | None = None) -> torch.Tensor:
        """Runs the model.

        Args:
            tokens: ``[B, T]`` token ids, BOS first; pad ids are masked as keys.
            hooks: ``{hook name: fn}``, see the module docstring.
            cache: if given, filled with ``{hook name: activation}``.
            cache_names: optional filter on which hook names to cache.
            skip_empty: without autograd, skip any attention sublayer whose
                ``W_O`` is exactly zero and any MLP whose ``W_out`` is (their
                output is then just the bias), unless a hook or the cache reads
                one of its own activations (``SUBLAYER_HOOKS``; the residual
                hooks around it still fire). Tracr fills the unused half of
                each layer this way, so a compiled model does less work; the
                result is the same for finite activations. ``False`` computes
                every sublayer, as Tracr does.
            start: ``(residual hook name, [B, T, D] residual)``: begin there
                instead of at the embeddings (the hook fires on the given
                residual; earlier sublayers are not run). Interventions that
                patch one hook many times use it to skip the layers before.
            stop_at: a residual hook name: stop once it has fired and return
                that residual ``[B, T, D]`` instead of the logits (the later
                sublayers are not run). A measurement at one layer needs
                nothing after it.

        Returns:
            logits ``[B, T, O]``, or with ``stop_at`` the residual ``[B, T, D]`` there.
        """
        hooks = hooks or {}

        def hp(name: str, x: torch.Tensor) -> torch.Tensor:
            fn = hooks.get(name)
            if fn is not None:
                out = fn(x, name)
                if out is not None:
                    x = out
            if cache is not None and (cache_names is None or cache_names(name)):
                cache[name] = x
            return x

        def want(name: str) -> bool:
            return name in hooks or (cache is not None and (cache_names is None or cache_names(name)))

        cfg = self.cfg
        B, T = tokens.shape
        if T > cfg.n_ctx:
            raise ValueError(f"sequence of {T} positions exceeds n_ctx={cfg.n_ctx}")
        P = {k.replace("__", "."): v for k, v in self.p._parameters.items()}  # {TL name: parameter}
        pad_id = cfg.vocab.index(cfg.pad_token)
        # On an accelerator, always mask rather than sync with the host to find out.
        padded = tokens.device.type != "cpu" or bool((tokens == pad_id).any())
        # "May attend" mask, broadcastable to [B, H, T, T]: pad keys, then causality. Without pads
        # the fused kernel needs none (is_causal), so it is only built when something reads it.
        mask = None
        if padded or hooks or cache is not None:
            if padded:
                mask = (tokens != pad_id)[:, None, None, :]  # [B, 1, 1, T]
            if cfg.causal:
                tri = torch.ones(T, T, dtype=torch.bool, device=tokens.device).tril()  # [T, T]
                mask = tri if mask is None else mask & tri
        # Never under autograd (a zero W_O still has a gradient), nor where a hook or the cache reads inside.
        skip_empty = skip_empty and not torch.is_grad_enabled()

        def inside_wanted(l: int, kind: str) -> bool:
            return any(want(f"blocks.{l}.{n}") for n in SUBLAYER_HOOKS[kind])
        first, start_name = 0, None  # first sublayer to run: 2l = layer l's attention, 2l + 1 its MLP
        stages = {f"blocks.{l}.hook_resid_{k}": 2 * l + i for l in range(cfg.n_layers)
                  for i, k in enumerate(("pre", "mid", "post"))} if start is not None or stop_at is not None else {}
        if stop_at is not None and stop_at not in stages:
            raise ValueError(f"cannot stop at {stop_at!r}: not a residual hook")
        if start is not None:
            start_name, resid = start
            if start_name not in stages:
                raise ValueError(f"cannot start at {start_name!r}: not a residual hook")
            first = stages[start_name]
            if stop_at is not None and stages[stop_at] < first:
                raise ValueError(f"cannot stop at {stop_at!r}: before the start {start_name!r}")
            resid = hp(start_name, resid)  # [B, T, D]
        else:
            embed = hp("hook_embed", P["embed.W_E"][tokens])  # [B, T, D]
            pos = hp("hook_pos_embed", P["pos_embed.W_pos"][:T].expand(B, T, -1))  # [B, T, D]
            resid = embed + pos  # [B, T, D]

        def fire(name: str, x: torch.Tensor) -> torch.Tensor:  # the start hook has already fired
            return x if name == start_name else hp(name, x)

        def norm(prefix: str, x: torch.Tensor) -> torch.Tensor:  # the identity without layer norm
            if not cfg.layer_norm:
                return x
            return layer_norm(x, P[prefix + ".w"], P[prefix + ".b"], cfg.eps, prefix, hp, want)
        for l in range(cfg.n_layers):
            p = f"blocks.{l}."
            if 2 * l >= first:
                resid = fire(p + "hook_resid_pre", resid)
                if stop_at == p + "hook_resid_pre":
                    return resid
                if skip_empty and not P[p + "attn.W_O"].any() and not inside_wanted(l, "attn"):
                    resid = fire(p + "hook_resid_mid", resid + P[p + "attn.b_O"])
                else:
                    x = norm(p + "ln1", resid)  # [B, T, D]
                    resid = fire(p + "hook_resid_mid", resid + self._attention(P, l, x, mask, padded, hp, want))
                if stop_at == p + "hook_resid_mid":
                    return resid
            if 2 * l + 1 >= first:
                if skip_empty and not P[p + "mlp.W_out"].any() and not inside_wanted(l, "mlp"):
                    resid = resid + P[p + "mlp.b_out"]
                else:
                    x = norm(p + "ln2", resid)  # [B, T, D]
                    if cfg.act_fn == "relu":
                        pre = linear(x, P[p + "mlp.W_in"].T, P[p + "mlp.b_in"], relu=True)  # [B, T, M], ReLU'd
                    else:
                        pre = ACTIVATIONS[cfg.act_fn](linear(x, P[p + "mlp.W_in"].T, P[p + "mlp.b_in"]))  # [B, T, M]
                    post = hp(p + "mlp.hook_post", pre)  # [B, T, M]
                    mlp_out = hp(p + "hook_mlp_out", linear(post, P[p + "mlp.W_out"].T, P[p + "mlp.b_out"]))  # [B, T, D]
                    resid = resid + mlp_out
                resid = fire(p + "hook_resid_post", resid)
                if stop_at == p + "hook_resid_post":
                    return resid
        w_u = P["embed.W_E"] if cfg.tied_unembed else P["unembed.W_U"].T  # [O, D]
        return linear(norm("ln_final", resid), w_u, P["unembed.b_U"])  # [B, T, O]

    def _attention(self, P: Mapping[str, torch.Tensor], l: int, resid: torch.Tensor, mask: torch.Tensor | None,
                   padded: bool, hp: Callable, want: Callable) -> torch.Tensor:
        """Layer ``l``'s attention output ``[B, T, D]`` (bias included), hooks fired under ``blocks.{l}.``.

        ``resid`` is the sublayer's input (after ``ln1`` when the model has layer norm).
        """
        cfg = self.cfg
        p = f"blocks.{l}."
        B, T, D = resid.shape
        H, K = cfg.n_heads, cfg.d_head
        scale = 1.0 / math.sqrt(K)
        if cfg.scale_attn_by_inverse_layer_idx:
            scale /= l + 1
        # Q, K and V in one matmul: [B, T, D] -> [B, T, 3, H, K] -> three [B, H, T, K].
        w_qkv = torch.cat([P[p + f"attn.W_{n}"] for n in "QKV"]).permute(0, 2, 1).reshape(3 * H * K, D)
        b_qkv = torch.cat([P[p + f"attn.b_{n}"] for n in "QKV"]).reshape(3 * H * K)
        q, k, v = linear(resid, w_qkv, b_qkv).view(B, T, 3, H, K).permute(2, 0, 3, 1, 4).unbind(0)
        if want(p + "attn.hook_pattern") or want(p + "attn.hook_z"):
            scores = (q @ k.transpose(-1, -2)) * scale  # [B, H, T, T]
            if mask is not None:
                scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            pattern = hp(p + "attn.hook_pattern", scores.softmax(dim=-1))  # [B, H, T, T]
            z = pattern @ v  # [B, H, T, K]
        else:  # nobody looks at the pattern: use the fused kernel
            z = F.scaled_dot_product_attention(q, k, v, attn_mask=mask if padded else None,
                                               is_causal=cfg.causal and not padded, scale=scale)  # [B, H, T, K]
        z = hp(p + "attn.hook_z", z.transpose(1, 2))  # [B, T, H, K]
        if want(p + "attn.hook_result"):  # per-head outputs only when someone reads them
            result = hp(p + "attn.hook_result", torch.einsum("bthk,hkd->bthd", z, P[p + "attn.W_O"]))  # [B, T, H, D]
            attn_out = result.sum(dim=2) + P[p + "attn.b_O"]
        else:
            attn_out = linear(z.reshape(B, T, H * K), P[p + "attn.W_O"].reshape(H * K, D).T, P[p + "attn.b_O"])
        return hp(p + "hook_attn_out", attn_out)  # [B, T, D]

    def run_with_cache(self, tokens: torch.Tensor, hooks: Mapping[str, Hook] | None = None,
                       names: Callable[[str], bool] | None = None,
                       start: tuple[str, torch.Tensor] | None = None, stop_at: str | None = None
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``forward`` that also returns ``{hook name: activation}``."""
        cache: dict[str, torch.Tensor] = {}
        logits = self.forward(tokens, hooks=hooks, cache=cache, cache_names=names, start=start, stop_at=stop_at)
        return logits, cache

    def resid_hook_names(self) -> list[str]:
        """Residual-stream hook names in order: embed, then pre/mid per layer, then final post."""
        names = []
        for l in range(self.cfg.n_layers):
            names += [f"blocks.{l}.hook_resid_pre", f"blocks.{l}.hook_resid_mid"]
        return names + [f"blocks.{self.cfg.n_layers - 1}.hook_resid_post"]
