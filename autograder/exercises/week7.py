"""Week 7 graders: the assembled MiniGPT and ``generate``.

Both are graded with the reference parts of weeks 1-6 and the week's locked code (their
``given`` in autograder/registry.py), so a mistake in an earlier week's part is not charged
again here. A MiniGPT is built from a ``GPTConfig``, which cannot travel to the worker as
data, so every case is a grader script (``script_call``): it builds the learner's model or
calls the learner's ``generate`` in the worker and returns plain tensors, which are judged
here against the reference.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from autograder.compare import Mismatch, describe
from autograder.exercises.common import expect, name_mistake, randint, randn, script_call
from autograder.grading import Case, given_code
from solutions.model import GPTConfig, MiniGPT, filter_logits, generate

# small enough that a whole grading stays well under a second of CPU
SMALL = dict(vocab_size=40, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=48,
             max_seq_len=40)
FAMILIES = {
    "Llama": dict(SMALL),
    "GPT-2": dict(SMALL, n_kv_heads=None, norm="layernorm", mlp="gelu", pos="learned",
                  tie_embeddings=True, bias=True),
    # nanoGPT's model: the exact GELU, and no biases (LayerNorm without one)
    "nanoGPT": dict(SMALL, n_kv_heads=None, norm="layernorm", mlp="gelu", pos="learned",
                    gelu_approximate="none", tie_embeddings=True),
    "Mistral": dict(SMALL, window=5),
    "Mixtral": dict(SMALL, n_experts=4, top_k=2),
    # the experiments' options (weeks 3 and 4): plain MLPs, ALiBi and no positions
    "ReLU NoPE": dict(SMALL, mlp="relu", pos="none"),
    "SiLU ALiBi": dict(SMALL, mlp="silu", pos="alibi", window=7),
}
PLAIN_MLPS = ("gelu", "relu", "silu")


def _reference(cfg: dict, state: dict[str, Tensor]) -> MiniGPT:
    model = MiniGPT(GPTConfig(**cfg))
    model.load_state_dict(state)
    return model.eval()


def _random_state(gen: torch.Generator, cfg: dict) -> dict[str, Tensor]:
    """Weights of a MiniGPT drawn from ``gen``, large enough that every part matters: unit
    embeddings, norm weights near one, ~1/sqrt(fan_in) matrices, router logits well apart."""
    model = MiniGPT(GPTConfig(**cfg))
    state = {}
    for name, p in model.state_dict().items():
        if name == "lm_head.weight" and cfg.get("tie_embeddings"):
            continue
        if "norm" in name and name.endswith("weight"):
            state[name] = 1 + randn(gen, *p.shape, scale=0.2)
        elif p.dim() == 1:  # biases
            state[name] = randn(gen, *p.shape, scale=0.2)
        elif "embed" in name:
            state[name] = randn(gen, *p.shape)
        else:
            scale = (3.0 if name.endswith("mlp.gate.weight") else 1.0) * p.shape[1] ** -0.5
            state[name] = randn(gen, *p.shape, scale=scale)
    if cfg.get("tie_embeddings"):
        state["lm_head.weight"] = state["embed_tokens.weight"]
    return state


# ---------------------------------------------------------------- MiniGPT

FORWARD = """
model = MiniGPT(GPTConfig(**cfg))
shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
result = {"shapes": shapes}
if shapes == {k: list(v.shape) for k, v in state.items()}:  # else the check explains
    head, embed = getattr(model, "lm_head", None), getattr(model, "embed_tokens", None)
    result["tied"] = head is not None and embed is not None and head.weight is embed.weight
    model.load_state_dict(state)
    model.eval()
    out = model(idx, targets)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"forward should return a pair (logits, loss); got {type(out).__name__}")
    logits, loss = out
    router = list(model.router_logits) if hasattr(model, "router_logits") else None
    logits_only, no_loss = model(idx)
    n_router = len(model.router_logits) if hasattr(model, "router_logits") else None
    result.update(logits=logits, loss=loss, router=router, n_router=n_router,
                  no_loss=no_loss, logits_only=logits_only)
    if with_grads:
        loss.backward()
        # every name of a shared (tied) parameter: named_parameters() keeps only the first one
        # registered, lm_head.weight when lm_head was built before embed_tokens
        result["grads"] = {n: p.grad for n, p in model.named_parameters(remove_duplicate=False)}
"""

CACHED = """
model = MiniGPT(GPTConfig(**cfg))
model.load_state_dict(state)
model.eval()
with torch.no_grad():
    cache = model.new_cache()
    pieces = [model(idx[:, a:b], cache=cache)[0] for a, b in cuts]
result = {"logits": torch.cat(pieces, dim=1)}
"""


def _forward_variant(model: MiniGPT, idx: Tensor, *, post_norm=False, final_norm=True,
                     positions=True, scale_embed=False, no_residual=False) -> Tensor:
    """The logits of a MiniGPT written with one of the usual mistakes."""
    cfg = model.config
    x = model.embed_tokens(idx)  # (B, T, dim)
    if scale_embed:
        x = x * math.sqrt(cfg.dim)
    if cfg.pos == "learned" and positions:
        x = x + model.embed_positions(torch.arange(idx.size(1)))
    for layer in model.layers:
        mlp = lambda h, layer=layer: (lambda o: o[0] if isinstance(o, tuple) else o)(
            layer.mlp(h))
        if post_norm:
            h = layer.input_layernorm(x + layer.self_attn(x))
            x = layer.post_attention_layernorm(h + mlp(h))
        elif no_residual:
            h = layer.self_attn(layer.input_layernorm(x))
            x = mlp(layer.post_attention_layernorm(h))
        else:
            x, _ = layer(x)
    if final_norm:
        x = model.norm(x)
    return model.lm_head(x)


def _logit_mistakes(model: MiniGPT, idx: Tensor) -> dict[str, Tensor]:
    with torch.no_grad():
        mistakes = {
            "post-norm: normalise the input of each sub-layer (x + attn(norm(x))), not the "
            "sum after the residual (norm(x + attn(x)))": _forward_variant(model, idx,
                                                                           post_norm=True),
            "the final norm is missing: apply `norm` to the last block's output before "
            "`lm_head`": _forward_variant(model, idx, final_norm=False),
            "the token embeddings are scaled by sqrt(dim): GPT-2, Llama and Mistral add them "
            "as they are": _forward_variant(model, idx, scale_embed=True),
            "the residual connections are missing: each block returns x + attn(...) and "
            "h + mlp(...)": _forward_variant(model, idx, no_residual=True),
        }
        if model.config.mlp == "gelu":
            other = "none" if model.config.gelu_approximate == "tanh" else "tanh"
            mistakes[f"the GELU: pass cfg.gelu_approximate (here {model.config.gelu_approximate!r})"
                     " to GeluMLP; yours computes the other GELU"] = _swapped(
                         model, idx, gelu_approximate=other)
        if model.config.pos == "learned":
            mistakes["the learned positions are not added: x = embed_tokens(idx) + "
                     "embed_positions(positions)"] = _forward_variant(model, idx,
                                                                      positions=False)
        mistakes.update(_option_mistakes(model, idx))
    return mistakes


def _swapped(model: MiniGPT, idx: Tensor, **change) -> Tensor:
    """The logits of ``model``'s weights in a model with another config (the same keys)."""
    other = MiniGPT(GPTConfig(**{**vars(model.config), **change}))
    other.load_state_dict(model.state_dict())
    return other.eval()(idx)[0]


def _option_mistakes(model: MiniGPT, idx: Tensor) -> dict[str, Tensor]:
    """The activation or position scheme of another option, in place of the config's."""
    cfg, mistakes = model.config, {}
    if cfg.mlp in PLAIN_MLPS and cfg.mlp != "gelu":
        for act in PLAIN_MLPS:
            if act != cfg.mlp:
                mistakes[f"mlp={cfg.mlp!r}: your MLP computes {act.upper()}; pass cfg.mlp to "
                         "GeluMLP as its activation"] = _swapped(model, idx, mlp=act)
    if cfg.pos in ("alibi", "none"):
        mistakes[f"pos={cfg.pos!r}: your attention rotates queries and keys with RoPE; only "
                 "pos='rope' does (rope_theta=None for every other pos)"] = _swapped(
                     model, idx, pos="rope")
    if cfg.pos == "alibi":
        mistakes["pos='alibi': no ALiBi bias reaches the scores; pass alibi=(cfg.pos == "
                 "'alibi') to CachedAttention"] = _swapped(model, idx, pos="none")
    if cfg.pos == "none":
        mistakes["pos='none' (NoPE) has no position signal at all, but your attention adds "
                 "ALiBi's bias"] = _swapped(model, idx, pos="alibi")
    return mistakes


def _check_forward(name: str, cfg: dict, model: MiniGPT, idx: Tensor, targets: Tensor,
                   grads: dict[str, Tensor] | None):
    expected_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    with torch.no_grad():
        logits, loss = model(idx, targets)
        router = list(model.router_logits)
    mistakes = _logit_mistakes(model, idx)
    loss_mistakes = {
        "targets of -100 must be ignored in the loss (F.cross_entropy does it by default: "
        "ignore_index=-100)": F.cross_entropy(logits.flatten(0, 1),
                                              targets.clamp(min=0).flatten()),
        "the loss should be the mean over the counted tokens, not their sum":
            F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum"),
    }

    def check(result: dict) -> None:
        out = result["output"]
        got = {k: tuple(v) for k, v in out["shapes"].items()}
        missing, extra = sorted(set(expected_shapes) - set(got)), sorted(set(got) -
                                                                         set(expected_shapes))
        gated = [k for k in extra if k.endswith("mlp.gate_proj.weight")]
        if gated and cfg.get("mlp") in PLAIN_MLPS:
            raise Mismatch(f"{name}: mlp={cfg['mlp']!r} is a plain MLP (up_proj, "
                           f"{cfg['mlp'].upper()}, down_proj), but yours has `{gated[0]}`: "
                           "only mlp='swiglu' is gated")
        if missing or extra:
            parts = ([f"missing {', '.join(missing[:6])}"] if missing else []) + (
                [f"unexpected {', '.join(extra[:6])}"] if extra else [])
            raise Mismatch(f"{name}: state dict keys differ: {'; '.join(parts)} (the names "
                           "follow transformers' Llama: embed_tokens, layers.i.input_layernorm,"
                           " self_attn, post_attention_layernorm, mlp, norm, lm_head)")
        for key, shape in expected_shapes.items():
            if got[key] != shape:
                raise Mismatch(f"{name}: `{key}` has shape {got[key]}, expected {shape}")
        if cfg.get("tie_embeddings") and out["tied"] is not True:
            raise Mismatch(f"{name}: with tie_embeddings, `lm_head.weight` must be the same "
                           "Parameter as `embed_tokens.weight` (assign it, do not copy it)")
        if not cfg.get("tie_embeddings") and out["tied"] is True:
            raise Mismatch(f"{name}: `lm_head` is tied to `embed_tokens` although "
                           "tie_embeddings is False")
        expect(out["logits"], logits, f"{name} logits", mistakes=mistakes, rtol=1e-4, atol=1e-4)
        expect(out["logits_only"], logits, f"{name} logits without targets", rtol=1e-4,
               atol=1e-4)
        if out["no_loss"] is not None:
            raise Mismatch(f"{name}: without targets the loss should be None, got "
                           f"{describe(out['no_loss'])}")
        got_loss = out["loss"]
        if isinstance(got_loss, Tensor) and got_loss.dim() == 0:
            got_loss = got_loss.float()
        expect(got_loss, loss, f"{name} loss", mistakes=loss_mistakes, rtol=1e-4, atol=1e-5)
        if cfg.get("n_experts"):
            got_router = out["router"]
            if not isinstance(got_router, list | tuple) or len(got_router) != len(router):
                raise Mismatch(f"{name}: `model.router_logits` should be a list of "
                               f"{len(router)} tensors (one per MoE layer) after a forward; "
                               f"got {describe(got_router)}")
            for i, (g, r) in enumerate(zip(got_router, router, strict=True)):
                expect(g, r, f"router_logits[{i}]", rtol=1e-4, atol=1e-4)
            if out["n_router"] != len(router):
                raise Mismatch(f"{name}: after a second forward `model.router_logits` holds "
                               f"{out['n_router']} tensors, expected {len(router)}: reset the "
                               "list at the start of each forward")
        elif isinstance(out["router"], list | tuple) and out["router"]:
            raise Mismatch(f"{name}: `model.router_logits` should stay empty in a model without "
                           f"experts; yours holds {len(out['router'])} items (append only the "
                           "router logits a MoE layer returns)")
        if grads is not None:
            got_grads = out.get("grads") or {}
            for key, expected in grads.items():
                g = got_grads.get(key)
                if g is None:
                    raise Mismatch(f"{name}: `{key}` received no gradient from the loss")
                expect(g, expected, f"{name} gradient of `{key}`", rtol=1e-3, atol=1e-5)

    return check


def _forward_case(gen: torch.Generator, name: str, T: int, with_grads: bool = False) -> Case:
    cfg = FAMILIES[name]
    state = _random_state(gen, cfg)
    model = _reference(cfg, state)
    idx = torch.randint(0, cfg["vocab_size"], (2, T), generator=gen)
    targets = torch.randint(0, cfg["vocab_size"], (2, T), generator=gen)
    targets[0, :3] = -100  # e.g. padding or a prompt that is not trained on
    targets[1, -1] = -100
    grads = None
    if with_grads:
        model.zero_grad()
        model(idx, targets)[1].backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    what = {"Llama": "RMSNorm, SwiGLU, RoPE, GQA", "GPT-2": "LayerNorm, GELU, learned "
            "positions, biases, tied embeddings", "nanoGPT": "exact GELU, LayerNorm without "
            "bias", "Mistral": f"sliding window {cfg.get('window')}"
            f" < {T} tokens", "Mixtral": "mixture of experts, router_logits",
            "ReLU NoPE": "mlp='relu', pos='none'",
            "SiLU ALiBi": f"mlp='silu', pos='alibi', window {cfg.get('window')}"}[name]
    call = script_call(FORWARD, cfg=cfg, state=state, idx=idx, targets=targets,
                       with_grads=with_grads)
    title = f"tiny {name} ({what}): state dict, logits, loss" + ", gradients" * with_grads
    return Case(title, call, _check_forward(f"tiny {name}", cfg, model, idx, targets, grads),
                points=2.0 if with_grads else 1.5)


def _pieces(model: MiniGPT, idx: Tensor, cuts) -> Tensor:
    """The logits of a cached forward of ``idx`` in pieces (``cuts``), as CACHED runs it."""
    with torch.no_grad():
        cache = model.new_cache()
        return torch.cat([model(idx[:, a:b], cache=cache)[0] for a, b in cuts], dim=1)


def _cached_case(gen: torch.Generator, name: str) -> Case:
    cfg = FAMILIES[name]
    state = _random_state(gen, cfg)
    model = _reference(cfg, state)
    idx = torch.randint(0, cfg["vocab_size"], (2, 16), generator=gen)
    cuts = [(0, 9), (9, 10), (10, 13), (13, 14), (14, 16)]
    with torch.no_grad():
        full, _ = model(idx)
    mistakes = {}
    if cfg.get("pos") == "learned":  # the learned positions of each piece counted from 0
        table = model.embed_positions
        table.forward = lambda positions, lookup=table.forward: lookup(positions - positions[0])
        mistakes["with a cache, the positions of the new tokens continue from cache[0].pos; "
                 "yours restart at 0"] = _pieces(model, idx, cuts)

    def check(result: dict) -> None:
        expect(result["output"]["logits"], full, "logits of the cached forward in pieces",
               mistakes=mistakes, rtol=1e-4, atol=1e-4)

    call = script_call(CACHED, cfg=cfg, state=state, idx=idx, cuts=cuts)
    return Case(f"tiny {name}: a cached forward in pieces (9, 1, 3, 1, 2 tokens) equals the "
                "full forward", call, check)


# ---------------------------------------------------------------- past max_seq_len

# each run's logits, or the error it raised as a string (the check reports it)
LONG = """
result = {}
for name, run in runs.items():
    model = MiniGPT(GPTConfig(**run["cfg"]))
    model.load_state_dict(run["state"])
    model.eval()
    try:
        with torch.no_grad():
            out = model(run["tokens"])
        result[name] = out[0] if isinstance(out, tuple) else out
    except Exception as exc:
        result[name] = f"{type(exc).__name__}: {exc}"
"""
LONG_FAMILIES = {"rope": "Llama", "alibi": "SiLU ALiBi", "none": "ReLU NoPE"}


def _long_case(gen: torch.Generator) -> Case:
    """RoPE, ALiBi and no positions need no table: the model runs on 2.5x ``max_seq_len``."""
    cfgs = {pos: dict(FAMILIES[family], window=None) for pos, family in LONG_FAMILIES.items()}
    states = {pos: _random_state(gen, cfg) for pos, cfg in cfgs.items()}
    T = int(2.5 * SMALL["max_seq_len"])
    idx = torch.randint(0, SMALL["vocab_size"], (1, T), generator=gen)
    expected = {pos: _reference(cfg, states[pos])(idx)[0].detach() for pos, cfg in cfgs.items()}
    # RoPE's positions taken modulo max_seq_len, as if read from a table of angles
    model = _reference(cfgs["rope"], states["rope"])
    for attn in (layer.self_attn for layer in model.layers):
        attn.rotate = lambda q, k, positions, rotate=attn.rotate: rotate(
            q, k, positions % SMALL["max_seq_len"])
    wrapped = model(idx)[0].detach()

    def check(result: dict) -> None:
        out = result["output"]
        for pos, want in expected.items():
            got = out.get(pos)
            if isinstance(got, str):
                raise Mismatch(f"pos={pos!r} with {T} tokens > max_seq_len = "
                               f"{SMALL['max_seq_len']}: your model raised {got}; only learned "
                               "positions are limited to max_seq_len (RoPE, ALiBi and no "
                               "positions need no table)")
            mistakes = {} if pos != "rope" else {
                "RoPE past max_seq_len: your positions wrap around at max_seq_len; rotate by "
                "the true positions 0..T-1": wrapped}
            expect(got, want, f"pos={pos!r}: logits of {T} tokens (max_seq_len "
                   f"{SMALL['max_seq_len']})", mistakes=mistakes, rtol=1e-4, atol=1e-4)

    call = script_call(LONG, runs={pos: {"cfg": cfg, "state": states[pos], "tokens": idx}
                                    for pos, cfg in cfgs.items()})
    return Case(f"past max_seq_len: RoPE, ALiBi and no positions run on {T} tokens "
                f"(max_seq_len {SMALL['max_seq_len']})", call, check)


def _learned_limit_case(gen: torch.Generator) -> Case:
    """Learned positions stop at ``max_seq_len``: exactly that many tokens run (and match),
    one more raises an error instead of cutting, wrapping or clamping the positions."""
    cfg = FAMILIES["GPT-2"]
    state = _random_state(gen, cfg)
    L = cfg["max_seq_len"]
    idx = torch.randint(0, cfg["vocab_size"], (1, L + 1), generator=gen)
    expected = _reference(cfg, state)(idx[:, :L])[0].detach()
    call = script_call(LONG, runs={"fit": {"cfg": cfg, "state": state, "tokens": idx[:, :L]},
                                    "past": {"cfg": cfg, "state": state, "tokens": idx}})

    def check(result: dict) -> None:
        out = result["output"]
        if isinstance(out.get("fit"), str):
            raise Mismatch(f"learned positions with exactly max_seq_len = {L} tokens: your "
                           f"model raised {out['fit']}")
        expect(out.get("fit"), expected, f"logits of {L} = max_seq_len tokens", rtol=1e-4,
               atol=1e-4)
        past = out.get("past")
        if not isinstance(past, str):
            raise Mismatch(f"learned positions with {L + 1} tokens > max_seq_len = {L}: your "
                           f"model returned {describe(past)} instead of raising an error; the "
                           "table has no row for the positions past it (raise a ValueError "
                           "that says so, do not cut, wrap or clamp the positions)")

    return Case(f"pos='learned' stops at max_seq_len: {L} tokens run, {L + 1} raise an error",
                call, check)


INIT = """
torch.manual_seed(seed)
model = MiniGPT(GPTConfig(**cfg))
result = {name: [list(p.shape), float(p.float().mean()), float(p.float().std()),
                 float(p.float().abs().max())] for name, p in model.state_dict().items()}
"""
INIT_STD = 0.02  # GPT-2's


def _init_case(gen: torch.Generator) -> Case:
    """A freshly built model is initialised as GPT-2 (the notebook asks for ``_init_weights``):
    linear and embedding weights normal(0, 0.02) (the residual projections o_proj and down_proj
    may be scaled by 1/sqrt(2 n_layers), as nanoGPT does), biases zero, norm weights one."""
    cfg = dict(FAMILIES["GPT-2"], dim=64, hidden_dim=128, vocab_size=100, max_seq_len=64)
    layers = cfg["n_layers"]

    def check(result: dict) -> None:
        for name, (shape, mean, std, top) in result["output"].items():
            if len(shape) == 2:
                scaled = name.endswith(("o_proj.weight", "down_proj.weight"))
                wanted = [INIT_STD] + ([INIT_STD / (2 * layers) ** 0.5] if scaled else [])
                if not any(0.8 * w <= std <= 1.2 * w for w in wanted) or abs(mean) > 0.005:
                    hint = (" (that is PyTorch's default initialisation: apply _init_weights to "
                            "every submodule with self.apply)" if std > 0.05 else "")
                    raise Mismatch(f"`{name}` starts with mean {mean:.3g} and std {std:.3g}; "
                                   f"initialise linear and embedding weights as GPT-2 does, "
                                   f"normal(0, {INIT_STD}){hint}")
            elif name.endswith("bias") and top != 0:
                raise Mismatch(f"`{name}` should start at zero, as GPT-2's biases do")
            elif "norm" in name and name.endswith("weight") and (mean != 1 or top != 1):
                raise Mismatch(f"`{name}` should start at one (a norm's weight)")

    call = script_call(INIT, cfg=cfg, seed=randint(gen, 0, 2**31))
    return Case("initialised as GPT-2: weights normal(0, 0.02), biases zero, norms one", call,
                check, points=0.5)


def build_minigpt(gen: torch.Generator) -> list[Case]:
    return [
        _forward_case(gen, "Llama", 12, with_grads=True),
        _forward_case(gen, "GPT-2", 12, with_grads=True),
        _forward_case(gen, "nanoGPT", 12),
        _forward_case(gen, "Mistral", 14),
        _forward_case(gen, "Mixtral", 10),
        _forward_case(gen, "ReLU NoPE", 12),
        _forward_case(gen, "SiLU ALiBi", 12, with_grads=True),
        _cached_case(gen, "GPT-2"),
        _cached_case(gen, "Mistral"),
        _cached_case(gen, "SiLU ALiBi"),
        _long_case(gen),
        _learned_limit_case(gen),
        _init_case(gen),
    ]


# ---------------------------------------------------------------- generate

GEN_CFG = dict(vocab_size=12, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=48,
               max_seq_len=48, window=6)
# the reference model, built in the worker from the given parts: a learner's `generate` is
# graded with the reference model, not with their own MiniGPT
MODEL = given_code("solutions.model:Block,MiniGPT") + """
model = MiniGPT(GPTConfig(**cfg))
model.load_state_dict(state)
model.eval()
"""
GENERATE = MODEL + """
torch.manual_seed(seed)
out = generate(model, idx, max_new_tokens, **kwargs)
result = {"tokens": out}
"""
# every call of the model is recorded: (tokens fed, whether a cache was passed)
GENERATE_COUNTING = MODEL + """
calls = []
_forward = model.forward
def _counting(idx, targets=None, cache=None):
    calls.append([int(idx.shape[1]), cache is not None])
    return _forward(idx, targets, cache)
model.forward = _counting
torch.manual_seed(seed)
out = generate(model, idx, max_new_tokens)
result = {"tokens": out, "calls": calls}
"""
# a vocabulary wider than transformers' default top_k of 50, with a long tail
DEFAULTS_CFG = dict(GEN_CFG, vocab_size=96)
# GPT-2 style with learned positions for only 12 tokens, so that generating without the cache
# must crop the sequence to its last max_seq_len tokens (the model refuses more); untied,
# because a tied head sharpened for greedy decoding repeats one token whatever the context
LEARNED_CFG = dict(GEN_CFG, n_kv_heads=None, window=None, norm="layernorm", mlp="gelu",
                   pos="learned", bias=True, max_seq_len=12)
# the reference model's refusal of a sequence past its learned positions, told apart from
# the learner's own errors
GENERATE_LONG = GENERATE.replace("out = generate(model, idx, max_new_tokens, **kwargs)\n", """\
try:
    out = generate(model, idx, max_new_tokens, **kwargs)
except ValueError as exc:
    if "learned position" not in str(exc):
        raise
    out = "refused"
""")


def _gen_model(gen: torch.Generator, sharpen: float, cfg: dict = GEN_CFG) -> tuple[dict, MiniGPT]:
    state = _random_state(gen, cfg)
    state["lm_head.weight"] = state["lm_head.weight"] * sharpen
    return state, _reference(cfg, state)


def _tokens(result: dict, B: int, T: int, new: int, prompt: Tensor,
            vocab_size: int = GEN_CFG["vocab_size"]) -> Tensor:
    out = result["output"]["tokens"]
    if type(out) is not Tensor or out.dtype not in (torch.int64, torch.int32):
        raise Mismatch(f"generate should return a tensor of token ids, got {describe(out)}")
    if tuple(out.shape) == (B, new):
        raise Mismatch(f"generate returned only the {new} new tokens: return the prompt "
                       f"followed by them, shape (B, T + max_new_tokens) = {(B, T + new)}")
    if tuple(out.shape) != (B, T + new):
        raise Mismatch(f"generate returned shape {tuple(out.shape)}, expected "
                       f"(B, T + max_new_tokens) = {(B, T + new)}")
    if not torch.equal(out[:, :T].long(), prompt):
        raise Mismatch("the output should start with the prompt, unchanged")
    if (out < 0).any() or (out >= vocab_size).any():
        raise Mismatch("generate returned ids outside the vocabulary")
    return out.long()


def _greedy_cropped(model: MiniGPT, idx: Tensor, new: int, keep: int) -> Tensor:
    """Greedy decoding without the cache that feeds the model the last ``keep`` tokens."""
    with torch.no_grad():
        for _ in range(new):
            logits = model(idx[:, -keep:])[0][:, -1]
            idx = torch.cat((idx, logits.argmax(-1, keepdim=True)), dim=1)
    return idx


def _greedy_case(gen: torch.Generator, title: str, kwargs: dict, hint: str,
                 cfg: dict = GEN_CFG) -> Case:
    crop = cfg["max_seq_len"]
    new = 24  # past the window of 6: the rolling cache is used; past LEARNED_CFG's 12 tokens
    for _ in range(20):  # past max_seq_len: a model for which a crop one token short shows
        state, model = _gen_model(gen, sharpen=4.0, cfg=cfg)
        prompt = torch.randint(0, cfg["vocab_size"], (3, 5), generator=gen)
        expected = generate(model, prompt, new, temperature=0,
                            use_cache=kwargs.get("use_cache", True))
        if crop >= 5 + new or not torch.equal(_greedy_cropped(model, prompt, new, crop - 1),
                                              expected):
            break

    def check(result: dict) -> None:
        if isinstance(result["output"]["tokens"], str):
            raise Mismatch(f"{title}: the model refused a sequence longer than its max_seq_len "
                           f"({crop}, learned positions): without the cache, feed it only the "
                           f"last max_seq_len tokens, idx[:, -model.config.max_seq_len:]")
        tokens = _tokens(result, 3, 5, new, prompt)
        if not torch.equal(tokens, expected):
            step = int((tokens != expected).any(0).nonzero()[0]) - 5
            raise Mismatch(f"{title}: the tokens differ from the reference's from new token "
                           f"{step} on{hint}")

    call = script_call(GENERATE_LONG, cfg=cfg, state=state, idx=prompt, max_new_tokens=new,
                       kwargs=kwargs, seed=randint(gen, 0, 2**31))
    return Case(title, call, check)


def _step_logits(model: MiniGPT, tokens: Tensor, T: int, temperature: float) -> Tensor:
    """The logits (divided by ``temperature``) each new token of ``tokens`` was drawn from.
    Rows repeat (one prompt, a few likely tokens), so each distinct row is run once."""
    rows, inverse = tokens[:, :-1].unique(dim=0, return_inverse=True)
    with torch.no_grad():
        logits, _ = model(rows)  # (distinct rows, T + new - 1, V)
    return logits[inverse, T - 1:].float() / temperature  # (B, new, V)


def _sampling_case(gen: torch.Generator, kind: str) -> Case:
    """Many rows of one prompt, three new tokens each: every token is allowed by the filter
    (checked against the reference logits of its own prefix), and the first tokens' frequencies
    match the filtered softmax within a bound a correct sampler exceeds with probability
    below 1e-6 per token (5 standard deviations plus a margin)."""
    B, T, new = 3000, 4, 3
    # the known mistake of these kinds: the nucleus of the raw logits (before top_k, before the
    # temperature), a filter that keeps tokens the right one drops
    raw_nucleus = kind in ("top_k_top_p", "temperature_top_p")
    for _ in range(50):  # weights for which the usual mistakes are far from the truth
        state, model = _gen_model(gen, sharpen=1.5)
        prompt = torch.randint(0, GEN_CFG["vocab_size"], (1, T), generator=gen)
        with torch.no_grad():
            first = model(prompt)[0][0, -1].float()  # (V,)
        probs = first.softmax(-1)
        p_sorted = probs.sort(descending=True).values
        if kind == "temperature":
            temperature, kwargs = 0.5, {"temperature": 0.5}
            alternatives = {
                "the distribution matches softmax(logits), not softmax(logits / temperature): "
                "divide the logits by the temperature before the softmax (dividing the "
                "probabilities after it changes nothing once they are renormalised)": probs,
                "the distribution matches softmax(logits * temperature): divide by the "
                "temperature, do not multiply": (first * temperature).softmax(-1),
            }
        elif kind == "top_k":
            temperature, kwargs = 1.0, {"temperature": 1.0, "top_k": 3}
            alternatives = {
                "top_k=3 keeps exactly the 3 largest logits; yours keeps only 2":
                    filter_logits(first[None], top_k=2)[0].softmax(-1),
            }
        elif kind == "top_k_top_p":
            # top_k=4 first; then a threshold halfway through the third of the four
            # renormalised probabilities: the tokens kept are the top three
            temperature, top_k = 1.0, 4
            kept = p_sorted[:top_k] / p_sorted[:top_k].sum()
            top_p = float(kept[:2].sum() + 0.5 * kept[2])
            kwargs = {"temperature": 1.0, "top_k": top_k, "top_p": top_p}
            alternatives = {  # the nucleus of the whole vocabulary
                "with top_k and top_p together, apply top_k first, then the nucleus of the "
                "renormalised top-k probabilities; yours took the nucleus of the whole "
                "vocabulary (top_k ignored, or applied after top_p)": filter_logits(
                    filter_logits(first[None], top_p=top_p), top_k)[0].softmax(-1)}
        elif kind == "temperature_top_p":
            # a threshold halfway through the third token of softmax(logits / T)
            temperature = 0.6
            p_t = (first / temperature).softmax(-1).sort(descending=True).values
            top_p = float(p_t[:2].sum() + 0.5 * p_t[2])
            kwargs = {"temperature": temperature, "top_p": top_p}
            alternatives = {  # the nucleus cut before the logits are divided by temperature
                "with a temperature and top_p, divide the logits by the temperature first, "
                "then take the nucleus of softmax(logits / temperature); yours cut the nucleus "
                "before the temperature": (filter_logits(first[None], top_p=top_p)[0]
                                           / temperature).softmax(-1)}
        else:
            temperature = 1.0
            # a threshold halfway through the third token: the nucleus is the top three
            top_p = float(p_sorted[:2].sum() + 0.5 * p_sorted[2])
            kwargs = {"temperature": 1.0, "top_p": top_p}
            two = filter_logits(first[None], top_k=2)[0].softmax(-1)
            alternatives = {
                "the token that crosses top_p is dropped: the nucleus is the smallest set of "
                "tokens whose probabilities REACH top_p, so keep a token while the ones "
                "before it sum to less than top_p": two,
            }
        want = filter_logits(first[None] / temperature, kwargs.get("top_k"),
                             kwargs.get("top_p"))[0].softmax(-1)
        bound = 5 * (want * (1 - want) / B).sqrt() + 0.01
        far = all(((alt - want).abs() > 3 * bound).any() for alt in alternatives.values())
        # a known wrong filter keeps tokens the right one drops, and draws them often
        outside = all(float(alt[want == 0].sum()) > 0.05 for alt in alternatives.values())
        if far and p_sorted[2] > 0.08 and (kind != "top_k" or p_sorted[3] > 0.05) and (
                not raw_nucleus or outside):
            break
    else:
        raise RuntimeError("could not draw a model that tells the sampling mistakes apart")

    def check(result: dict) -> None:
        tokens = _tokens(result, B, T, new, prompt.expand(B, T))
        logits = _step_logits(model, tokens, T, temperature)  # (B, new, V)
        allowed = torch.isfinite(filter_logits(logits.flatten(0, 1), kwargs.get("top_k"),
                                               kwargs.get("top_p")))
        drawn = tokens[:, T:].flatten()
        ok = allowed.gather(1, drawn[:, None])[:, 0]
        if not ok.all():
            flat = logits.flatten(0, 1)
            ranks = (flat > flat.gather(1, drawn[:, None])).sum(-1)[~ok]  # of the outsiders
            if kind == "top_k":
                if (ranks == kwargs["top_k"]).all():
                    raise Mismatch("a sampled token was the (k+1)-th most likely: top_k "
                                   "keeps exactly the k largest logits")
                raise Mismatch(f"{int((~ok).sum())} of {B * new} sampled tokens were "
                               "outside the top_k most likely")
            if kind == "top_p":
                if (ranks == allowed.sum(-1)[~ok]).all():
                    raise Mismatch("your nucleus keeps one token too many: stop at the first "
                                   "token with which the sorted probabilities reach top_p")
                raise Mismatch(f"{int((~ok).sum())} of {B * new} sampled tokens were outside "
                               "the nucleus (sort the probabilities in decreasing order before "
                               "the cumulative sum)")
            if raw_nucleus:
                kept = torch.isfinite(filter_logits(flat * temperature, top_p=kwargs["top_p"]))
                if kept.gather(1, drawn[:, None])[:, 0][~ok].all():
                    raise Mismatch(next(iter(alternatives)))
            given = ", ".join(f"{k}={v:.4g}" for k, v in kwargs.items())
            raise Mismatch(f"{int((~ok).sum())} of {B * new} sampled tokens were outside the "
                           f"tokens that {given} keep: divide by the temperature, then top_k, "
                           "then the nucleus")
        counts = torch.bincount(tokens[:, T], minlength=want.numel()).float() / B
        if counts.max() == 1 and want.max() < 0.9:
            raise Mismatch("every row drew the same first token: sample with "
                           "torch.multinomial(probs, 1), not argmax, when temperature > 0")
        if ((counts - want).abs() > bound).any():
            name_mistake(alternatives, lambda alt: ((counts - alt).abs() <= bound + 0.01).all())
            worst = int((counts - want).abs().argmax())
            raise Mismatch(f"the first sampled token has frequency {counts[worst]:.3f} for "
                           f"token {worst}, expected {want[worst]:.3f} (+- {bound[worst]:.3f})"
                           f" from softmax(filtered logits / temperature)")

    titles = {"temperature": "temperature 0.5: frequencies follow softmax(logits / T)",
              "top_k": "top_k=3: samples among the 3 most likely, in proportion",
              "top_p": "top_p: samples inside the nucleus, the crossing token included",
              "top_k_top_p": "top_k=4 and top_p together: the nucleus of the top 4",
              "temperature_top_p": "temperature 0.6 and top_p: the nucleus of "
                                   "softmax(logits / T)"}
    use_cache = kind != "top_k"  # one path each way
    call = script_call(GENERATE, cfg=GEN_CFG, state=state, idx=prompt.expand(B, T).clone(),
                       max_new_tokens=new, kwargs={**kwargs, "use_cache": use_cache},
                       seed=randint(gen, 0, 2**31))
    return Case(titles[kind] + ("" if use_cache else " (use_cache=False)"), call, check,
                points=1.5)


NUCLEUS_TAIL = "the last tenth of the probability mass"


def _defaults_case(gen: torch.Generator) -> Case:
    """``generate(model, idx, n)`` alone: temperature 1 over the whole vocabulary (no top-k, no
    top-p) and the KV cache. The first sampled token's frequencies are compared with
    softmax(logits) by rank bins (a wrong default moves whole bins: top_k=50 empties the
    ranks past 50, top_p=0.9 the last tenth of the mass, temperature 0.9 or 1.1 shifts mass
    between head and tail), each within 5 standard deviations plus a margin; the model's
    calls show whether the cache was used."""
    B, T, new = 20000, 4, 2
    state, model = _gen_model(gen, sharpen=1.4, cfg=DEFAULTS_CFG)
    vocab = DEFAULTS_CFG["vocab_size"]
    prompt = torch.randint(0, vocab, (1, T), generator=gen)
    with torch.no_grad():
        first = model(prompt)[0][0, -1].float()  # (V,)
    want = first.softmax(-1)
    order = want.argsort(descending=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(vocab)
    cum_before = want[order].cumsum(0) - want[order]
    bins = {"the most likely token": rank == 0, "ranks 2 to 8": (rank >= 1) & (rank < 8),
            "ranks 9 to 50": (rank >= 8) & (rank < 50), "ranks past 50": rank >= 50,
            NUCLEUS_TAIL: cum_before[rank] >= 0.9}

    def check(result: dict) -> None:
        out = result["output"]
        tokens = _tokens(result, B, T, new, prompt.expand(B, T), vocab)
        counts = torch.bincount(tokens[:, T], minlength=vocab).float() / B
        stats = {}
        for what, members in bins.items():
            p, got = float(want[members].sum()), float(counts[members].sum())
            stats[what] = (p, got, 5 * (p * (1 - p) / B) ** 0.5 + 0.002)
        failed = [what for what, (p, got, bound) in stats.items() if abs(got - p) > bound]
        if failed:
            if any(stats[what][1] < 0.005 for what in failed):  # a tail never drawn: a cut
                kept = int(rank[tokens[:, T]].max()) + 1
                mass = float(want[order[:kept]].sum())
                hint = ("top_k must default to None, no cut (transformers' default is 50)"
                        if kept == 50 else "top_p must default to None, no nucleus cut")
                raise Mismatch(f"with the defaults your first samples never go past the {kept} "
                               f"most likely tokens ({mass:.0%} of the probability): {hint}")
            p, got, bound = stats[failed[0]]
            raise Mismatch(f"generate(model, idx, n) with the defaults drew {failed[0]} with "
                           f"frequency {got:.3f}, expected {p:.3f} (+- {bound:.3f}): temperature "
                           "must default to 1.0, sample from softmax(logits)")
        calls = out.get("calls")
        if not isinstance(calls, list) or not calls or not all(c[1] for c in calls) or \
                sum(c[0] for c in calls) != T + new - 1:
            fed = ", ".join(f"{n} tokens{' with a cache' if c else ''}" for n, c in calls or [])
            raise Mismatch("use_cache must default to True: feed the prompt once, then only "
                           "the newest token each step, with the cache from model.new_cache(); "
                           f"your calls of the model fed {fed}")

    call = script_call(GENERATE_COUNTING, cfg=DEFAULTS_CFG, state=state,
                       idx=prompt.expand(B, T).clone(), max_new_tokens=new,
                       seed=randint(gen, 0, 2**31))
    return Case("defaults: temperature 1 over the whole vocabulary (no top-k, no top-p), with "
                "the KV cache", call, check, points=1.5)


def build_generate(gen: torch.Generator) -> list[Case]:
    cache_hint = (" (with the cache: run the prompt once, then feed only the newest token; "
                  "the cache holds the rest and their positions)")
    return [
        _greedy_case(gen, "greedy (temperature=0) with the KV cache",
                     {"temperature": 0}, cache_hint),
        _greedy_case(gen, "greedy (temperature=0) without the cache (use_cache=False)",
                     {"temperature": 0, "use_cache": False}, ""),
        _greedy_case(gen, "top_k=1 at temperature 1 is greedy", {"top_k": 1},
                     " (top_k=1 keeps only the most likely token)"),
        _sampling_case(gen, "temperature"),
        _sampling_case(gen, "top_k"),
        _sampling_case(gen, "top_p"),
        _defaults_case(gen),
        # (after the others, so that their hidden inputs stay those of earlier releases)
        _greedy_case(gen, "greedy without the cache past max_seq_len (learned positions): "
                     "the last max_seq_len tokens", {"temperature": 0, "use_cache": False},
                     " (without the cache, feed the last max_seq_len tokens: "
                     "idx[:, -model.config.max_seq_len:])", cfg=LEARNED_CFG),
        _sampling_case(gen, "top_k_top_p"),
        _sampling_case(gen, "temperature_top_p"),
    ]
