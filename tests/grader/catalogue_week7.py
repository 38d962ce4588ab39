"""Week 7 submissions for the grader's own tests: known-wrong ones and correct variants.

Each is the reference code with one realistic change (``patch`` checks the change applies,
so a rewrite of the reference cannot silently turn a mistake into the reference). The parts
of earlier weeks and the week's locked code are given by the grader (``Exercise.given``).
"""

from autograder.grading import given_code

MODEL = given_code("solutions.model:Block,MiniGPT")
GENERATE = given_code("solutions.model:filter_logits,generate")


def patch(source: str, *changes: tuple[str, str]) -> str:
    for old, new in changes:
        assert source.count(old) == 1, f"not exactly once in the reference: {old!r}"
        source = source.replace(old, new)
    return source


POST_NORM = ("""        h = x + self.self_attn(self.input_layernorm(x), cache)  # (B, T, dim)
        out = self.mlp(self.post_attention_layernorm(h))
        out, router_logits = out if isinstance(out, tuple) else (out, None)
        return h + out, router_logits""", """        h = self.input_layernorm(x + self.self_attn(x, cache))
        out = self.mlp(h)
        out, router_logits = out if isinstance(out, tuple) else (out, None)
        return self.post_attention_layernorm(h + out), router_logits""")
FINAL_NORM = ("logits = self.lm_head(self.norm(x))", "logits = self.lm_head(x)")
TIE = ("self.lm_head.weight = self.embed_tokens.weight",
       "self.lm_head.weight.data.copy_(self.embed_tokens.weight.data)")
START = ("start = 0 if cache is None else cache[0].pos", "start = 0")
SAMPLE = ("""            probs = F.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)
            next_token = torch.multinomial(probs, 1, generator=generator)  # (B, 1)""",)
NUCLEUS_DROP = "drop_sorted = (cum - sorted_logits.softmax(dim=-1)) >= top_p"
LEARNED_CHECK = """            if start + T > self.config.max_seq_len:  # the one position scheme with an end
                raise ValueError(f"positions up to {start + T - 1}, but the learned position "
                                 f"table has {self.config.max_seq_len} rows (max_seq_len)")
"""
LEARNED_ADD = """        if self.config.pos == "learned":
""" + LEARNED_CHECK + """            x = x + self.embed_positions(torch.arange(start, start + T, device=idx.device))
"""
ROPE_THETA_ARG = "cfg.rope_theta if rope else None"
PLAIN_MLP = "GeluMLP(cfg.dim, cfg.hidden_dim, cfg.bias, cfg.gelu_approximate, cfg.mlp)"

# (exercise, code, a phrase the feedback must contain, or None)
WRONG = {
    "minigpt_post_norm": ("minigpt", patch(MODEL, POST_NORM), "post-norm"),
    "minigpt_no_final_norm": ("minigpt", patch(MODEL, FINAL_NORM), "final norm is missing"),
    "minigpt_head_copied_not_tied": ("minigpt", patch(MODEL, TIE), "same Parameter"),
    "minigpt_cached_positions_restart": ("minigpt", patch(MODEL, START), "restart at 0"),
    "minigpt_router_logits_not_reset": ("minigpt", patch(
        MODEL, ("        self.router_logits = []\n        for i, layer", "        for i, layer")),
        "reset the list"),
    "minigpt_gelu_approximation_ignored": ("minigpt", patch(MODEL, (
        PLAIN_MLP, "GeluMLP(cfg.dim, cfg.hidden_dim, cfg.bias, activation=cfg.mlp)")),
        "pass cfg.gelu_approximate"),
    "minigpt_loss_summed": ("minigpt", patch(
        MODEL, ("targets.flatten())", "targets.flatten(), reduction=\"sum\")")),
        "mean over the counted tokens"),
    "minigpt_no_learned_positions": ("minigpt", patch(
        MODEL, (LEARNED_ADD, "")), "learned positions are not added"),
    "minigpt_embeddings_scaled": ("minigpt", patch(
        MODEL, ("x = self.embed_tokens(idx)  # (B, T, dim)",
                "x = self.embed_tokens(idx) * self.config.dim**0.5")), "scaled by sqrt(dim)"),
    "minigpt_meta_key_names": ("minigpt", MODEL.replace("embed_tokens", "tok_embeddings"),
                               "state dict keys differ"),
    "minigpt_no_residual": ("minigpt", patch(
        MODEL, ("h = x + self.self_attn(", "h = self.self_attn("),
        ("return h + out, router_logits", "return out, router_logits")),
        "residual connections are missing"),
    "minigpt_loss_counts_ignored_targets": ("minigpt", patch(
        MODEL, ("loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())",
                "loss = F.cross_entropy(logits.flatten(0, 1).float(), "
                "targets.clamp(min=0).flatten())")), "-100 must be ignored"),
    "generate_temperature_after_softmax": ("generate", patch(GENERATE, (
        "F.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)",
        "F.softmax(filter_logits(logits, top_k, top_p), dim=-1) / temperature")),
        "divide the logits by the temperature"),
    "generate_temperature_multiplied": ("generate", patch(GENERATE, (
        "logits / temperature", "logits * temperature")), "do not multiply"),
    "generate_top_p_drops_crossing_token": ("generate", patch(GENERATE, (
        NUCLEUS_DROP, "drop_sorted = cum > top_p")), "crosses top_p"),
    "generate_top_k_keeps_k_plus_one": ("generate", patch(GENERATE, (
        "logits.topk(min(top_k, logits.size(-1)), dim=-1)",
        "logits.topk(min(top_k + 1, logits.size(-1)), dim=-1)")), "(k+1)-th"),
    "generate_returns_only_new_tokens": ("generate", patch(GENERATE, (
        "    return idx\n", "    return idx[:, -max_new_tokens:]\n")), "only the"),
    "generate_whole_sequence_into_the_cache": ("generate", patch(GENERATE, (
        "        next_input = next_token\n", "        next_input = idx\n")),
        "feed only the newest token"),
    "generate_argmax_always": ("generate", patch(GENERATE, (SAMPLE[0], """\
            logits = filter_logits(logits / temperature, top_k, top_p)
            next_token = logits.argmax(dim=-1, keepdim=True)""")), "torch.multinomial"),
    "generate_nucleus_unsorted": ("generate", patch(GENERATE, (
        "sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)",
        "sorted_logits, order = logits, torch.arange(logits.size(-1)).expand_as(logits)")),
        "outside the nucleus"),
}

# library shortcuts (keys with "shortcut" must score zero) and ignored contract defaults
WRONG |= {
    "minigpt_llama_shortcut": ("minigpt", """
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM


class MiniGPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        hf = LlamaForCausalLM(LlamaConfig(
            vocab_size=config.vocab_size, hidden_size=config.dim,
            num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
            num_key_value_heads=config.n_kv_heads, intermediate_size=config.hidden_dim))
        self.embed_tokens, self.layers = hf.model.embed_tokens, hf.model.layers
        self.norm, self.lm_head = hf.model.norm, hf.lm_head
        self.hf = [hf]

    def forward(self, idx, targets=None):
        return self.hf[0](idx, labels=targets).logits, None
""", "not allowed"),
    "minigpt_encoder_layer_shortcut": ("minigpt", patch(MODEL, (
        "        self.layers = nn.ModuleList(Block(config, i) for i in range(config.n_layers))",
        "        self.layers = nn.ModuleList(nn.TransformerEncoderLayer(config.dim, config.n_heads,"
        " norm_first=True) for _ in range(config.n_layers))")), "not allowed"),
    "minigpt_pytorch_default_init": ("minigpt", patch(MODEL, (
        "        self.apply(self._init_weights)\n", "")), "PyTorch's default initialisation"),
    "generate_default_temperature": ("generate", patch(GENERATE, (
        "temperature: float = 1.0", "temperature: float = 0.8")),
        "temperature must default to 1.0"),
    "generate_default_top_k_of_transformers": ("generate", patch(GENERATE, (
        "    top_k: int | None = None,\n", "    top_k: int | None = 50,\n")),
        "top_k must default to None"),
    "generate_default_top_p": ("generate", patch(GENERATE, (
        "    top_p: float | None = None,\n", "    top_p: float | None = 0.9,\n")),
        "top_p must default to None"),
    "generate_default_without_cache": ("generate", patch(GENERATE, (
        "use_cache: bool = True", "use_cache: bool = False")), "use_cache must default to True"),
    "generate_top_p_keeps_one_token_too_many": ("generate", patch(GENERATE, (
        NUCLEUS_DROP, "drop_sorted = (cum - sorted_logits.softmax(dim=-1)).roll(1, -1) >= top_p\n"
        "        drop_sorted[:, 0] = False")), "one token too many"),
    "generate_top_k_keeps_k_minus_one": ("generate", patch(GENERATE, (
        "logits.topk(min(top_k, logits.size(-1)), dim=-1)",
        "logits.topk(min(top_k - 1, logits.size(-1)), dim=-1)")), "keeps only 2"),
    "generate_top_p_warper_shortcut": ("generate", "from transformers.generation.logits_process "
        "import TopPLogitsWarper\n" + patch(GENERATE, (
            """        sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # drop a token when the tokens before it already reach top_p (the first always stays)
        drop_sorted = (cum - sorted_logits.softmax(dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)  # vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))""",
            "        logits = TopPLogitsWarper(top_p)(None, logits)")), "not allowed"),
}

# top_k and top_p together, the temperature with top_p, and the crop without the cache
TOP_K_FILTER = """    if top_k is not None:
        kth = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
"""
TOP_P_FILTER = """    if top_p is not None:
        sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # drop a token when the tokens before it already reach top_p (the first always stays)
        drop_sorted = (cum - sorted_logits.softmax(dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)  # vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))
"""
CROP = ("next_input = idx[:, -model.config.max_seq_len:]", "next_input = idx")
WRONG |= {
    "generate_top_k_dropped_with_top_p": ("generate", patch(GENERATE, (
        "    if top_k is not None:\n", "    if top_k is not None and top_p is None:\n")),
        "apply top_k first"),
    "generate_top_p_before_top_k": ("generate", patch(GENERATE, (
        TOP_K_FILTER + TOP_P_FILTER, TOP_P_FILTER + TOP_K_FILTER)), "apply top_k first"),
    "generate_filters_before_temperature": ("generate", patch(GENERATE, (
        "F.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)",
        "F.softmax(filter_logits(logits, top_k, top_p) / temperature, dim=-1)")),
        "divide the logits by the temperature first"),
    "generate_no_crop_without_cache": ("generate", patch(GENERATE, CROP),
                                       "idx[:, -model.config.max_seq_len:]"),
    "generate_crop_one_short": ("generate", patch(GENERATE, (
        CROP[0], "next_input = idx[:, -model.config.max_seq_len + 1:]")), "max_seq_len"),
}

# the options of the experiments (issue 14): activations, positions, inputs past max_seq_len
WRONG |= {
    "minigpt_silu_mlp_secretly_gated": ("minigpt", patch(MODEL, (
        'elif cfg.mlp == "swiglu":', 'elif cfg.mlp in ("swiglu", "silu"):')),
        "only mlp='swiglu' is gated"),
    "minigpt_plain_mlp_always_gelu": ("minigpt", patch(MODEL, (
        PLAIN_MLP, "GeluMLP(cfg.dim, cfg.hidden_dim, cfg.bias, cfg.gelu_approximate)")),
        "pass cfg.mlp to GeluMLP"),
    "minigpt_relu_mlp_computes_silu": ("minigpt", patch(MODEL, (
        PLAIN_MLP, "GeluMLP(cfg.dim, cfg.hidden_dim, cfg.bias, cfg.gelu_approximate, "
        "'silu' if cfg.mlp == 'relu' else cfg.mlp)")), "your MLP computes SILU"),
    # the week-7 notebook's old rule: RoPE unless the positions are learned
    "minigpt_rope_unless_learned": ("minigpt", patch(MODEL, (
        ROPE_THETA_ARG, "cfg.rope_theta if cfg.pos != 'learned' else None")),
        "rotates queries and keys with RoPE"),
    "minigpt_alibi_not_passed": ("minigpt", patch(MODEL, (
        "                alibi=cfg.pos == \"alibi\")", "                )")),
        "no ALiBi bias reaches the scores"),
    "minigpt_alibi_for_every_unrotated_pos": ("minigpt", patch(MODEL, (
        "alibi=cfg.pos == \"alibi\"", "alibi=cfg.pos != \"rope\"")), "adds ALiBi's bias"),
    "minigpt_every_pos_refuses_long_inputs": ("minigpt", patch(MODEL, (
        LEARNED_ADD, """        if start + T > self.config.max_seq_len:
            raise ValueError("the sequence is longer than max_seq_len")
        if self.config.pos == "learned":
            x = x + self.embed_positions(torch.arange(start, start + T, device=idx.device))
""")), "only learned positions are limited"),
    "minigpt_learned_positions_clamped": ("minigpt", patch(MODEL, (LEARNED_ADD, """\
        if self.config.pos == "learned":
            positions = torch.arange(start, start + T, device=idx.device)
            x = x + self.embed_positions(positions.clamp(max=self.config.max_seq_len - 1))
""")), "instead of raising an error"),
    "minigpt_learned_positions_wrap_around": ("minigpt", patch(MODEL, (LEARNED_ADD, """\
        if self.config.pos == "learned":
            positions = torch.arange(start, start + T, device=idx.device)
            x = x + self.embed_positions(positions % self.config.max_seq_len)
""")), "instead of raising an error"),
    # nanoGPT's generate crops the context: the model itself keeps only the last max_seq_len
    "minigpt_input_cropped_to_max_seq_len": ("minigpt", patch(MODEL, (
        "        B, T = idx.shape\n", "        idx = idx[:, -self.config.max_seq_len:]\n"
        "        B, T = idx.shape\n")), "max_seq_len"),
}

CORRECT = {
    # lm_head built first: named_parameters() then lists the tied matrix as lm_head.weight
    # only, yet embed_tokens.weight receives its gradient
    "minigpt_lm_head_built_first": ("minigpt", patch(
        MODEL,
        ("        self.embed_tokens = nn.Embedding(config.vocab_size, config.dim)\n",
         "        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)\n"
         "        self.embed_tokens = nn.Embedding(config.vocab_size, config.dim)\n"),
        ("        self.norm = make_norm(config)\n"
         "        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)\n",
         "        self.norm = make_norm(config)\n"))),
    # the red team's probabilities raised to 1 / T, with the filters on those probabilities
    # (temperature first, as the contract orders it), and a crop written as a condition
    "generate_filters_on_probabilities": ("generate", """
import torch


def filter_logits(logits, top_k=None, top_p=None):
    keep = torch.ones_like(logits, dtype=torch.bool)
    if top_k is not None:
        keep = torch.zeros_like(keep).scatter(-1, logits.topk(top_k, -1).indices, True)
    masked = logits.masked_fill(~keep, float("-inf"))
    if top_p is not None:
        probs = masked.softmax(-1)
        order = probs.argsort(-1, descending=True)
        sorted_probs = probs.gather(-1, order)
        before = torch.cat([torch.zeros_like(sorted_probs[:, :1]),
                            sorted_probs.cumsum(-1)[:, :-1]], -1)
        keep = keep & torch.zeros_like(keep).scatter(-1, order, before < top_p)
    return logits.masked_fill(~keep, float("-inf"))


@torch.no_grad()
def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
             use_cache=True, *, generator=None):
    cache = model.new_cache() if use_cache else None
    seq, feed = idx, idx
    for _ in range(max_new_tokens):
        if not use_cache and seq.size(1) > model.config.max_seq_len:
            feed = seq[:, seq.size(1) - model.config.max_seq_len:]
        elif not use_cache:
            feed = seq
        logits = model(feed, cache=cache)[0][:, -1]
        if temperature == 0:
            nxt = logits.argmax(-1, keepdim=True)
        else:
            probs = logits.softmax(-1) ** (1.0 / temperature)  # softmax(logits / T), unnormalised
            probs = filter_logits(probs.log(), top_k, top_p).exp()
            nxt = torch.multinomial(probs / probs.sum(-1, keepdim=True), 1, generator=generator)
        seq = torch.cat((seq, nxt), dim=1)
        feed = nxt
    return seq
"""),
    # the other direction of tying, position rows sliced from the table, a zip over the cache
    "minigpt_rewritten": ("minigpt", patch(
        MODEL,
        ("self.lm_head.weight = self.embed_tokens.weight",
         "self.embed_tokens.weight = self.lm_head.weight"),
        ("x = x + self.embed_positions(torch.arange(start, start + T, device=idx.device))",
         "x = x + self.embed_positions.weight[start : start + T]"),
        ("""        for i, layer in enumerate(self.layers):
            x, router_logits = layer(x, None if cache is None else cache[i])""",
         """        for layer, layer_cache in zip(self.layers, cache or [None] * len(self.layers)):
            x, router_logits = layer(x, layer_cache)"""),
        ("loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())",
         "loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1),"
         " ignore_index=-100)"))),
    # the MoE is recognised by type, not by the shape of its output
    "minigpt_moe_by_type": ("minigpt", patch(MODEL, (
        "        out, router_logits = out if isinstance(out, tuple) else (out, None)\n",
        "        router_logits = None\n        if isinstance(self.mlp, MoE):\n"
        "            out, router_logits = out\n"))),
    # nanoGPT's initialisation: residual projections scaled by 1/sqrt(2 n_layers)
    "minigpt_nanogpt_scaled_residual_init": ("minigpt", patch(MODEL, (
        "        self.apply(self._init_weights)\n", """        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, std=0.02 / (2 * config.n_layers) ** 0.5)
"""))),
    # learned positions past the table: an assert, as nanoGPT writes it (any error counts)
    "minigpt_learned_limit_by_assert": ("minigpt", patch(MODEL, (LEARNED_CHECK, """\
            assert start + T <= self.config.max_seq_len, "past the learned positions"
"""))),
    # the activation picked from a table of functions; ALiBi passed for its own pos only
    "minigpt_activation_from_a_table": ("minigpt", patch(MODEL, (PLAIN_MLP, """GeluMLP(
                cfg.dim, cfg.hidden_dim, cfg.bias, cfg.gelu_approximate,
                {"gelu": "gelu", "relu": "relu", "silu": "silu"}[cfg.mlp])"""), (
        ROPE_THETA_ARG, "(cfg.rope_theta if cfg.pos == 'rope' else None) if rope else None"))),
    # the loss written out: log-softmax, gather, mean over counted tokens
    "minigpt_manual_loss": ("minigpt", patch(MODEL, (
        "loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())", """\
logp = logits.float().log_softmax(-1)  # (B, T, V)
            keep = targets != -100
            picked = logp.gather(-1, targets.clamp(min=0)[..., None])[..., 0]  # (B, T)
            loss = -(picked * keep).sum() / keep.sum()"""))),
    # Gumbel-max: argmax of the logits plus Gumbel noise is a draw from their softmax
    "generate_gumbel_max": ("generate", patch(GENERATE, (SAMPLE[0], """\
            scores = filter_logits(logits / temperature, top_k, top_p)
            gumbel = -torch.log(-torch.log(torch.rand_like(scores).clamp(1e-20, 1.0)))
            next_token = (scores + gumbel).argmax(dim=-1, keepdim=True)  # (B, 1)"""))),
    # top-k by sorting and a scatter of the first k positions
    "generate_sorting_top_k": ("generate", patch(GENERATE, (
        """        kth = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))""",
        """        order = logits.argsort(dim=-1, descending=True)[:, :top_k]
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter(1, order, True)
        logits = logits.masked_fill(~keep, float("-inf"))"""))),
    # the nucleus row by row, in a Python loop
    "generate_nucleus_loop": ("generate", patch(GENERATE, (
        """        sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # drop a token when the tokens before it already reach top_p (the first always stays)
        drop_sorted = (cum - sorted_logits.softmax(dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)  # vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))""",
        """        out = torch.full_like(logits, float("-inf"))
        for b in range(logits.size(0)):
            probs = logits[b].softmax(-1)
            total = 0.0
            for token in probs.argsort(descending=True).tolist():
                out[b, token] = logits[b, token]
                total += probs[token].item()
                if total >= top_p:
                    break
        logits = out"""))),
}
