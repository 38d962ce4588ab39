"""Your parts from earlier weeks, for the notebooks of weeks 7 and 10: ``load_parts()``.

The week-7 MiniGPT is assembled from what you wrote in weeks 1-6. ``load_parts`` finds those
notebooks next to this week's folder (``../week3/rmsnorm_swiglu.ipynb``, ...: the layout of
both the course's release folder and nbgrader's fetched assignments), runs their code (the
answer cells whole, the other cells' imports and definitions only, as the grader reads a
submission), checks each part on a tiny input against the reference, and hands back the
parts to use. A part that is missing, unfinished or wrong is replaced by the reference one
where the instructor allows it (``allow_reference``), and the table printed says which.

Week 10 asks for your week-7 ``MiniGPT`` and ``generate`` (``load_parts(["MiniGPT",
"generate"])``): the week-7 notebook's code runs with the parts of weeks 1-6 it needs, loaded
the same way first, and the table lists them all.

This runs in your own kernel, on your own code: it is a convenience, not the grader.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from autograder.compare import check_tensor
from autograder.reference import Spec
from autograder.registry import BY_WEEK
from autograder.submission import SubmissionError, read_notebook


@dataclass(frozen=True)
class Part:
    week: int  # the week whose notebook defines it
    reference: str  # "module:Symbol"
    smoke: Callable[[object, object], None]  # (yours, reference) -> raises if they differ
    needs: tuple[str, ...] = ()  # parts the notebook's code uses without defining them

    @property
    def notebook(self) -> str:
        """The notebook, relative to a week's folder (the build's naming)."""
        return f"../{BY_WEEK[self.week].notebook_file}"


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _same(got, want, what: str = "output") -> None:
    if isinstance(want, tuple):
        if not isinstance(got, tuple) or len(got) != len(want):
            raise AssertionError(f"{what} should be a tuple of {len(want)}")
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, f"{what}[{i}]")
        return
    check_tensor(got, want, what, rtol=1e-3, atol=1e-4, check_dtype=False)


def _module_smoke(args: tuple, shape: tuple[int, ...]):
    """Build both with ``args``, give them the same random weights, compare a forward."""

    def smoke(yours, reference) -> None:
        ref = reference(*args)
        gen = _gen()
        state = {k: torch.randn(v.shape, generator=gen) * 0.5 + (k.endswith("norm.weight"))
                 for k, v in ref.state_dict().items()}
        ref.load_state_dict(state)
        mine = yours(*args)
        mine.load_state_dict(state)  # the contract's parameter names
        x = torch.randn(*shape, generator=gen)
        with torch.no_grad():
            _same(mine(x), ref(x))

    return smoke


def _function_smoke(*make_inputs: Callable[[torch.Generator], tuple]):
    def smoke(yours, reference) -> None:
        for make in make_inputs:
            inputs = make(_gen())
            _same(yours(*inputs), reference(*inputs))

    return smoke


def _attention_smoke(yours, reference) -> None:
    for window in (None, 3):
        _module_smoke((16, 4, 2, window), (2, 7, 16))(yours, reference)
    attn = yours(16, 4, 2, 3)
    for name, value in (("n_heads", 4), ("n_kv_heads", 2), ("head_dim", 4), ("window", 3)):
        if getattr(attn, name, None) != value:
            raise AssertionError(f"the week-7 model reads `attention.{name}` (expected "
                                 f"{value}); your Attention has {getattr(attn, name, None)!r}")
    missing = [m for m in ("project", "rotate", "attend") if not callable(getattr(attn, m, None))]
    if missing:
        raise AssertionError(f"the week-7 model extends the steps of your Attention; yours has "
                             f"no {', '.join(missing)} (week 5, exercise 3)")
    # week 7's CachedAttention on your class, against it on the reference: with RoPE or
    # learned positions (GPT-2: biases, no rotation), the course's code or the fast paths,
    # the whole sequence or tokens fed through a KV cache in pieces
    from solutions.efficient_attention import KVCache

    ours, theirs = _cached_attention(yours), _cached_attention(reference)
    gen = _gen()
    x = torch.randn(2, 7, 16, generator=gen)
    for rope_theta, bias, window in ((500.0, False, 3), (None, True, None)):
        mine, ref = (cls(16, 4, 2, window, rope_theta, bias=bias) for cls in (ours, theirs))
        ref.load_state_dict({k: torch.randn(v.shape, generator=gen) * 0.5
                             for k, v in ref.state_dict().items()})
        mine.load_state_dict(ref.state_dict())
        for fast in (False, True):
            mine.fast = ref.fast = fast
            with torch.no_grad():
                _same(mine(x), ref(x), f"CachedAttention(rope_theta={rope_theta}, fast={fast})")
                cache = KVCache(window)
                pieces = torch.cat([mine(x[:, a:b], cache) for a, b in ((0, 4), (4, 5), (5, 7))],
                                   dim=1)
                _same(pieces, ref(x), f"CachedAttention(fast={fast}) fed through a KVCache")


def _cached_attention(attention):
    """The week-7 notebook's given ``CachedAttention``, built on ``attention``."""
    import solutions.model
    from autograder.grading import given_code

    namespace = {**vars(solutions.model), "Attention": attention}
    exec(given_code("solutions.model:pairs_side_by_side,rotate_pairs,CachedAttention"),
         namespace)
    return namespace["CachedAttention"]


def _qkv(gen, heads=2, T=10, D=4):
    return tuple(torch.randn(1, heads, T, D, generator=gen) for _ in range(3))


PARTS: dict[str, Part] = {
    "RMSNorm": Part(3, "solutions.normalization:RMSNorm", _module_smoke((8,), (2, 3, 8))),
    "SwiGLU": Part(3, "solutions.feedforward:SwiGLU", _module_smoke((8, 12), (2, 3, 8))),
    "causal_mask": Part(1, "solutions.attention:causal_mask",
                        _function_smoke(lambda g: (5,))),
    "scaled_dot_product_attention": Part(
        1, "solutions.attention:scaled_dot_product_attention",
        _function_smoke(lambda g: (*_qkv(g), torch.ones(10, 10, dtype=torch.bool).tril()))),
    "rope_angles": Part(4, "solutions.positions:rope_angles",
                        _function_smoke(lambda g: (torch.arange(6), 8))),
    "rotate_half": Part(4, "solutions.positions:rotate_half",
                        _function_smoke(lambda g: (torch.randn(2, 6, 8, generator=g),))),
    "apply_rope": Part(4, "solutions.positions:apply_rope", _function_smoke(
        lambda g: (torch.randn(1, 2, 6, 8, generator=g), torch.arange(6)),
        lambda g: (torch.randn(1, 2, 3, 8, generator=g), torch.arange(4, 7), 500.0))),
    "alibi_bias": Part(4, "solutions.positions:alibi_bias",
                       _function_smoke(lambda g: (4, 6), lambda g: (3, 2))),
    "repeat_kv": Part(5, "solutions.efficient_attention:repeat_kv",
                      _function_smoke(lambda g: (torch.randn(1, 2, 3, 4, generator=g), 3))),
    "sliding_window_mask": Part(5, "solutions.efficient_attention:sliding_window_mask",
                                _function_smoke(lambda g: (6, 3), lambda g: (5, None))),
    "sliding_window_attention": Part(
        5, "solutions.efficient_attention:sliding_window_attention",
        _function_smoke(lambda g: (*_qkv(g), 3))),
    "Attention": Part(5, "solutions.efficient_attention:Attention", _attention_smoke),
    "MoE": Part(6, "solutions.moe:MoE", _module_smoke((8, 12, 4, 2), (2, 3, 8))),
    "load_balancing_loss": Part(6, "solutions.moe:load_balancing_loss", _function_smoke(
        lambda g: (torch.randn(10, 4, generator=g), 4, 2))),
}


def _minigpt_smoke(yours, reference) -> None:
    """Your MiniGPT with the reference's weights gives the reference's logits (two families)."""
    from solutions.model import GPTConfig

    gen = _gen()
    for preset in ("tiny", "tiny_gpt2"):
        cfg = GPTConfig.preset(preset, vocab_size=20, max_seq_len=16)
        ref = reference(cfg).eval()
        mine = yours(cfg).eval()
        mine.load_state_dict(ref.state_dict())
        idx = torch.randint(0, 20, (2, 9), generator=gen)
        with torch.no_grad():
            _same(mine(idx)[0], ref(idx)[0], f"{preset} logits")


def _generate_smoke(yours, reference) -> None:
    """Greedy decoding with and without the cache gives the reference's tokens."""
    from solutions.model import GPTConfig, MiniGPT

    gen = _gen()
    model = MiniGPT(GPTConfig.preset("tiny", vocab_size=20, max_seq_len=32)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3 + (p.dim() == 1))
    idx = torch.randint(0, 20, (2, 4), generator=gen)
    want = reference(model, idx, 8, temperature=0)
    for use_cache in (True, False):
        got = yours(model, idx, 8, temperature=0, use_cache=use_cache)
        if not isinstance(got, torch.Tensor) or not torch.equal(got, want):
            raise AssertionError(f"greedy tokens (use_cache={use_cache}) differ from the "
                                 "reference's")


# week 7's model, for week 10: its notebook runs with the parts of weeks 1-6 already defined
MODEL_PARTS: dict[str, Part] = {
    "MiniGPT": Part(7, "solutions.model:MiniGPT", _minigpt_smoke, needs=tuple(PARTS)),
    "generate": Part(7, "solutions.model:generate", _generate_smoke, needs=tuple(PARTS)),
}


def _run_notebook(path: Path, given: dict | None = None) -> tuple[dict, list[str]]:
    """Execute a notebook's code as the grader reads it, in a namespace of its own that starts
    with ``given``; its printing and warnings are swallowed. Returns the namespace and the
    cells that failed."""
    namespace: dict = {**(given or {}), "__name__": f"parts_{path.stem}"}
    failed = []
    sub = read_notebook(path)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for chunk in sub.chunks:
            try:
                exec(compile(chunk["source"], chunk["label"], "exec"), namespace)
            except Exception as exc:
                failed.append(f"{chunk['label']}: {type(exc).__name__}: {exc}")
    return namespace, failed


def _problem(name: str, part: Part, here: Path, cache: dict,
             loaded: dict[str, object]) -> tuple[object | None, str]:
    """(your part, "") when it is usable, else (None, why not). ``loaded``: the parts so far,
    which ``part.needs`` takes from."""
    path = (here / part.notebook).resolve()
    if not path.exists():
        return None, f"{part.notebook.removeprefix('../')} not found"
    if path not in cache:
        try:
            cache[path] = _run_notebook(path, {n: loaded[n] for n in part.needs})
        except SubmissionError as exc:
            cache[path] = ({}, [str(exc)])
    namespace, failed = cache[path]
    if name not in namespace:
        why = f"no `{name}` in {part.notebook.removeprefix('../')}"
        return None, why + (f" ({failed[0]})" if failed else "")
    yours = namespace[name]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            part.smoke(yours, Spec.parse(part.reference).load())
    except NotImplementedError:
        return None, "not implemented yet"
    except Exception as exc:
        message = " ".join(str(exc).split())[:160]
        return None, f"your version failed: {type(exc).__name__}: {message}"
    return yours, ""


def load_parts(names: Iterable[str] | None = None, allow_reference: bool | Iterable[str] = True,
               here: str | Path | None = None) -> dict[str, object]:
    """Your parts from earlier weeks, checked, with the reference where yours cannot be used.

    Args:
        names: the parts to load (default: every part of :data:`PARTS`, weeks 1-6); a part of
            :data:`MODEL_PARTS` brings the parts it needs first.
        allow_reference: True: any part may fall back to the reference; False: none may (a
            part that is missing or wrong raises); a set of names: only those may.
        here: this week's folder (default: the current directory, the notebook's own).

    Returns:
        ``{name: object}``, ready for ``globals().update(...)``.
    """
    here = Path.cwd() if here is None else Path(here)
    known = {**PARTS, **MODEL_PARTS}
    names = list(PARTS) if names is None else list(names)
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"unknown parts {unknown}; the parts are {sorted(known)}")
    names = list(dict.fromkeys(n for name in names for n in (*known[name].needs, name)))
    allowed = set(known) if allow_reference is True else (
        set() if allow_reference is False else set(allow_reference))
    parts, rows, cache = {}, [], {}
    for name in names:
        part = known[name]
        yours, why = _problem(name, part, here, cache, parts)
        if yours is not None:
            parts[name] = yours
            rows.append((name, f"yours: {part.notebook.removeprefix('../')}"))
            continue
        if name not in allowed:
            raise RuntimeError(
                f"{name}: {why}. Your instructor asks for your own {name}: fix it in "
                f"{part.notebook.removeprefix('../')}, save, and run this cell again.")
        parts[name] = Spec.parse(part.reference).load()
        rows.append((name, f"reference ({why})"))
    width = max(len(n) for n, _ in rows) if rows else 4
    print(f"{'part'.ljust(width)} | source")
    print(f"{'-' * width}-|-{'-' * 40}")
    for name, source in rows:
        print(f"{name.ljust(width)} | {source}")
    return parts
