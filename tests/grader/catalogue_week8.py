"""Week 8 submissions for the grader's own tests: known-wrong ones and correct variants.

Each wrong submission is a realistic mistake. The test suite grades each one and asserts it
loses points and, where the grader knows the mistake, that its message names it. The
submissions define only the exercise's function: the grader builds the configurations itself.
"""

# count_parameters: the reference's structure with one line changed per mistake
COUNT = """
def count_parameters(config, active=False):
    c = config
    d, hd = c.dim, c.dim // c.n_heads
    q, kv = c.n_heads * hd, {KV} * hd
    attention = d * q + 2 * d * kv + q * d + ({ATT_BIAS} if c.bias else 0)
    norm = d * (2 if c.norm == "layernorm" and c.bias else 1)
    if c.n_experts:
        experts = {EXPERTS}
        mlp = {ROUTER} + experts * 3 * d * c.hidden_dim
    elif c.mlp == "swiglu":
        mlp = {SWIGLU} * d * c.hidden_dim
    else:
        mlp = 2 * d * c.hidden_dim + (c.hidden_dim + d if c.bias else 0)
    layer = attention + mlp + {NORMS}
    embeddings = c.vocab_size * d + ({POS} if c.pos == "learned" else 0)
    head = {HEAD}
    return embeddings + c.n_layers * layer + {FINAL} + head
"""
RIGHT = dict(KV="c.n_kv_heads", ATT_BIAS="q + 2 * kv + d", EXPERTS="c.top_k if active else "
             "c.n_experts", ROUTER="d * c.n_experts", SWIGLU="3", NORMS="2 * norm",
             POS="c.max_seq_len * d", HEAD="0 if c.tie_embeddings else c.vocab_size * d",
             FINAL="norm")


def count(**changes: str) -> str:
    return COUNT.format(**{**RIGHT, **changes})


def loss(body: str, header: str = "") -> str:
    return (f"{header}\ndef chinchilla_loss(N, D, E=1.69, A=406.4, B=410.7, alpha=0.34, "
            f"beta=0.28):\n{body}\n")


def optimal(body: str, header: str = "") -> str:
    return (f"{header}\ndef compute_optimal(C, A=406.4, B=410.7, alpha=0.34, beta=0.28):\n"
            f"{body}\n")


CLOSED_FORM = """
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    N = G * (C / 6) ** (beta / (alpha + beta))"""

WRONG = {
    # count_parameters
    "count_tied_twice": ("count_parameters", count(HEAD="c.vocab_size * d"),
                         "tied embeddings counted twice"),
    "count_no_norms": ("count_parameters", count(NORMS="0", FINAL="0"), "norms are missing"),
    "count_no_biases": ("count_parameters", count(ATT_BIAS="0").replace(
        "(c.hidden_dim + d if c.bias else 0)", "0").replace(
        '2 if c.norm == "layernorm" and c.bias else 1', "1"), "biases are missing"),
    "count_swiglu_two_matrices": ("count_parameters", count(SWIGLU="2"), "three matrices"),
    "count_kv_at_n_heads": ("count_parameters", count(KV="c.n_heads"), "n_kv_heads * head_dim"),
    "count_active_all_experts": ("count_parameters", count(EXPERTS="c.n_experts"),
                                 "only top_k experts"),
    "count_active_no_router": ("count_parameters", count(ROUTER="0"), "router"),
    "count_no_position_table": ("count_parameters", count(POS="0"), "position table"),
    "count_float_from_millions": ("count_parameters", count().replace(
        "return embeddings", "return 1.0 * embeddings"), "Python int"),
    # chinchilla_loss
    "loss_exponents_swapped": ("chinchilla_loss", loss(
        "    return E + A / N**beta + B / D**alpha"), "alpha and beta are swapped"),
    "loss_A_B_swapped": ("chinchilla_loss", loss("    return E + B / N**alpha + A / D**beta"),
                         "A and B are swapped"),
    "loss_no_E": ("chinchilla_loss", loss("    return A / N**alpha + B / D**beta"),
                  "irreducible loss"),
    "loss_positive_exponents": ("chinchilla_loss", loss(
        "    return E + A * N**alpha + B * D**beta"), "negative"),
    "loss_parenthesised": ("chinchilla_loss", loss(
        "    return E + (A / N)**alpha + (B / D)**beta"), "not (A / N)^alpha"),
    "loss_math_pow_scalars_only": ("chinchilla_loss", loss(
        "    return E + A / math.pow(N, alpha) + B / math.pow(D, beta)", "import math"), ""),
    # compute_optimal
    "optimal_20_tokens_rule": ("compute_optimal", optimal("""
    N = (C / 120) ** 0.5
    return N, 20 * N""", "import math"), "rule of thumb"),
    "optimal_exponents_swapped": ("compute_optimal", optimal("""
    G = (beta * A / (alpha * B)) ** (1 / (alpha + beta))
    N = G * (C / 6) ** (alpha / (alpha + beta))
    return N, C / (6 * N)"""), "exponents are swapped"),
    "optimal_2ND": ("compute_optimal", optimal("""
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    N = G * (C / 2) ** (beta / (alpha + beta))
    return N, C / (2 * N)"""), "not 2 N D"),
    "optimal_no_G": ("compute_optimal", optimal("""
    N = (C / 6) ** (beta / (alpha + beta))
    return N, C / (6 * N)"""), "constant factor G"),
    "optimal_D_N_order": ("compute_optimal", optimal(CLOSED_FORM + """
    return C / (6 * N), N"""), "parameters first"),
    "optimal_coarse_grid": ("compute_optimal", optimal("""
    import torch
    n = torch.logspace(5, 14, 40, dtype=torch.float64)
    L = A / n**alpha + B / (C / (6 * n))**beta
    N = float(n[L.argmin()])
    return N, C / (6 * N)"""), "expected N"),
}

# library shortcuts (keys with "shortcut" must score zero), ignored contract defaults and the
# mirror images of named mistakes
WRONG |= {
    "count_numel_of_a_meta_model_shortcut": ("count_parameters", """
import torch
from torch import nn


def count_parameters(config, active=False):
    with torch.device("meta"):
        layers = [nn.Embedding(config.vocab_size, config.dim)]
    return sum(p.numel() for layer in layers for p in layer.parameters())
""", "not allowed"),
    "count_sums_the_given_breakdown": ("count_parameters", """
def parameter_breakdown(config, active=False):
    c = config
    return {"all": c.vocab_size * c.dim}


def count_parameters(config, active=False):
    return sum(parameter_breakdown(config, active).values())
""", "parameter_breakdown is the notebook's given answer"),
    "count_active_by_default": ("count_parameters", count().replace(
        "active=False", "active=True"), "without active=True count all n_experts"),
    "count_no_lm_head": ("count_parameters", count(HEAD="0"), "lm_head is missing"),
    "count_biases_always": ("count_parameters", count().replace(
        "if c.bias else 0)", "if True else 0)"), "biases counted although bias=False"),
    "count_layernorm_bias_always": ("count_parameters", count().replace(
        'c.norm == "layernorm" and c.bias', 'c.norm == "layernorm"'),
        "LayerNorm without bias (bias=False) has only its weight"),
    "count_gelu_three_matrices": ("count_parameters", count().replace(
        "mlp = 2 * d * c.hidden_dim", "mlp = 3 * d * c.hidden_dim"), "not three"),
    "count_queries_at_n_kv_heads": ("count_parameters", count().replace(
        "q, kv = c.n_heads * hd", "q, kv = c.n_kv_heads * hd"), "only k_proj and v_proj"),
    "count_position_table_always": ("count_parameters", count().replace(
        'if c.pos == "learned" else 0', "if True else 0"), "rotary positions have no"),
    # written when the MLP was SwiGLU or GELU: ReLU and SiLU counted as gated
    "count_plain_mlp_only_for_gelu": ("count_parameters", count().replace(
        'elif c.mlp == "swiglu":', 'elif c.mlp != "gelu":'), "only SwiGLU has three"),
    # a position table for every pos but RoPE
    "count_position_table_unless_rope": ("count_parameters", count().replace(
        'if c.pos == "learned" else 0', 'if c.pos != "rope" else 0'),
        "only learned positions have parameters"),
    "loss_no_data_term": ("chinchilla_loss", loss("    return E + A / N**alpha"),
                          "data term B / D^beta is missing"),
    "loss_no_parameter_term": ("chinchilla_loss", loss("    return E + B / D**beta"),
                               "parameter term A / N^alpha is missing"),
    "optimal_D_without_the_6": ("compute_optimal", optimal(CLOSED_FORM + """
    return N, C / N"""), "you left out the 6"),
    "optimal_N_from_C_not_C_over_6": ("compute_optimal", optimal("""
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    N = G * C ** (beta / (alpha + beta))
    return N, C / (6 * N)"""), "you used C instead of C / 6"),
}

# the experts and the router have no biases; the constants of the fit are arguments
WRONG |= {
    "count_moe_experts_with_biases": ("count_parameters", count(
        ROUTER="d * c.n_experts + (experts * (2 * c.hidden_dim + d) if c.bias else 0)"),
        "the experts are SwiGLU without biases"),
    "count_moe_router_with_bias": ("count_parameters", count(
        ROUTER="d * c.n_experts + (c.n_experts if c.bias else 0)"),
        "the router gate has no bias"),
    "loss_constant_arguments_ignored": ("chinchilla_loss", loss(
        "    return 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28"), "ignores its constant arguments"),
    "loss_alpha_argument_ignored": ("chinchilla_loss", loss(
        "    return E + A / N**0.34 + B / D**beta"), "ignores its argument alpha"),
    "optimal_constant_arguments_ignored": ("compute_optimal", optimal("""
    G = (0.34 * 406.4 / (0.28 * 410.7)) ** (1 / 0.62)
    N = G * (C / 6) ** (0.28 / 0.62)
    return N, C / (6 * N)"""), "ignores its constant arguments"),
    "optimal_minimises_the_default_loss": ("compute_optimal", optimal("""
    import math
    lo, hi = 0.0, math.log(C / 6)
    for _ in range(200):  # ternary search on log N of the learner's own chinchilla_loss
        a, b = lo + (hi - lo) / 3, hi - (hi - lo) / 3
        la = chinchilla_loss(math.exp(a), C / (6 * math.exp(a)))
        lb = chinchilla_loss(math.exp(b), C / (6 * math.exp(b)))
        lo, hi = (lo, b) if la < lb else (a, hi)
    N = math.exp((lo + hi) / 2)
    return N, C / (6 * N)""", header=loss("    return E + A / N**alpha + B / D**beta")),
        "ignores its constant arguments"),
}

CORRECT = {
    # the contract's signatures alone: the fit's numbers written in, no constant arguments
    "loss_contract_signature_only": ("chinchilla_loss", """
def chinchilla_loss(N, D):
    return 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28
"""),
    "optimal_contract_signature_only": ("compute_optimal", """
def compute_optimal(C):
    a, b = 0.34, 0.28
    G = (a * 406.4 / (b * 410.7)) ** (1 / (a + b))
    N = G * (C / 6) ** (b / (a + b))
    return N, C / (6 * N)
"""),
    # the red team's: a golden-section search on log N of the learner's own chinchilla_loss,
    # given the constants; a grid over log N refined four times (numpy)
    "optimal_golden_section_with_the_constants": ("compute_optimal", optimal("""
    import math
    f = lambda x: chinchilla_loss(math.exp(x), C / (6 * math.exp(x)), 0.0, A, B, alpha, beta)
    a, b = 0.0, math.log(C / 6)
    g = (math.sqrt(5) - 1) / 2
    for _ in range(200):
        c, d = b - g * (b - a), a + g * (b - a)
        a, b = (a, d) if f(c) < f(d) else (c, b)
    N = math.exp((a + b) / 2)
    return N, C / (6 * N)""", header=loss("    return E + A / N**alpha + B / D**beta"))),
    "optimal_refined_numpy_grid": ("compute_optimal", optimal("""
    def objective(log_n):
        N = np.exp(log_n)
        return A / N**alpha + B / (C / (6 * N)) ** beta

    lo, hi = np.log(1e3), np.log(C / 6 / 1e3)
    for _ in range(4):
        grid = np.linspace(lo, hi, 20001)
        i = int(np.argmin(objective(grid)))
        lo, hi = grid[max(i - 2, 0)], grid[min(i + 2, len(grid) - 1)]
    N = float(np.exp(grid[i]))
    return N, C / (6 * N)""", header="import numpy as np\n")),
    # count_parameters
    "count_per_module": ("count_parameters", """
def count_parameters(config, active=False):
    c = config
    d = c.dim
    hd = d // c.n_heads

    def linear(i, o):
        return i * o + (o if c.bias else 0)

    def norm():
        return 2 * d if (c.norm == "layernorm" and c.bias) else d

    attn = (linear(d, c.n_heads * hd) + 2 * linear(d, c.n_kv_heads * hd)
            + linear(c.n_heads * hd, d))
    if c.n_experts:
        k = c.top_k if active else c.n_experts
        mlp = d * c.n_experts + k * 3 * d * c.hidden_dim
    elif c.mlp in ("gelu", "relu", "silu"):
        mlp = linear(d, c.hidden_dim) + linear(c.hidden_dim, d)
    else:
        mlp = 3 * d * c.hidden_dim
    total = c.vocab_size * d
    if c.pos == "learned":
        total += c.max_seq_len * d
    total += c.n_layers * (attn + mlp + 2 * norm()) + norm()
    if not c.tie_embeddings:
        total += c.vocab_size * d
    return total
"""),
    "count_dict_of_shapes": ("count_parameters", """
import math


def count_parameters(config, active=False):
    c = config
    d, hd = c.dim, c.dim // c.n_heads
    shapes = {"embed": (c.vocab_size, d), "norm": (d,)}
    if c.pos == "learned":
        shapes["pos"] = (c.max_seq_len, d)
    if not c.tie_embeddings:
        shapes["lm_head"] = (c.vocab_size, d)
    if c.norm == "layernorm" and c.bias:
        shapes["norm.bias"] = (d,)
    for i in range(c.n_layers):
        p = f"layers.{i}."
        shapes[p + "q"] = (c.n_heads * hd, d)
        shapes[p + "k"] = (c.n_kv_heads * hd, d)
        shapes[p + "v"] = (c.n_kv_heads * hd, d)
        shapes[p + "o"] = (d, c.n_heads * hd)
        for n in ("ln1", "ln2"):
            shapes[p + n] = (d,)
            if c.norm == "layernorm" and c.bias:
                shapes[p + n + ".bias"] = (d,)
        if c.bias:
            shapes[p + "qkv.bias"] = (c.n_heads * hd + 2 * c.n_kv_heads * hd,)
            shapes[p + "o.bias"] = (d,)
        if c.n_experts:
            shapes[p + "router"] = (c.n_experts, d)
            for e in range(c.top_k if active else c.n_experts):
                shapes[p + f"expert{e}"] = (3, c.hidden_dim, d)
        elif c.mlp == "swiglu":
            shapes[p + "mlp"] = (3, c.hidden_dim, d)
        else:
            shapes[p + "mlp"] = (2, c.hidden_dim, d)
            if c.bias:
                shapes[p + "mlp.bias"] = (c.hidden_dim + d,)
    return sum(math.prod(s) for s in shapes.values())
"""),
    "count_reference_shape": ("count_parameters", count()),
    # chinchilla_loss
    "loss_torch_pow": ("chinchilla_loss", loss("""
    return E + A * N ** (-alpha) + B * D ** (-beta)""")),
    "loss_exp_log": ("chinchilla_loss", loss("""
    if isinstance(N, torch.Tensor):
        return E + A * torch.exp(-alpha * torch.log(N)) + B * torch.exp(-beta * torch.log(D))
    if isinstance(N, np.ndarray):
        return E + A * np.exp(-alpha * np.log(N)) + B * np.exp(-beta * np.log(D))
    return E + A * math.exp(-alpha * math.log(N)) + B * math.exp(-beta * math.log(D))""",
                                              "import math\nimport numpy as np\nimport torch")),
    "loss_terms_named": ("chinchilla_loss", loss("""
    model_term = A / N**alpha
    data_term = B / D**beta
    return E + model_term + data_term""")),
    # compute_optimal
    "optimal_closed_form": ("compute_optimal", optimal(CLOSED_FORM + """
    return N, C / (6 * N)""")),
    "optimal_fine_grid": ("compute_optimal", optimal("""
    import torch
    n = torch.logspace(0, 16, 400_001, dtype=torch.float64)
    L = A / n**alpha + B / (C / (6 * n))**beta
    N = float(n[L.argmin()])
    return N, C / (6 * N)""")),
    "optimal_golden_section": ("compute_optimal", optimal("""
    f = lambda x: A / math.exp(alpha * x) + B / (C / (6 * math.exp(x))) ** beta
    lo, hi = 0.0, 40.0
    r = (math.sqrt(5) - 1) / 2
    for _ in range(200):
        a, b = hi - r * (hi - lo), lo + r * (hi - lo)
        if f(a) < f(b):
            hi = b
        else:
            lo = a
    N = math.exp((lo + hi) / 2)
    return N, C / (6 * N)""", "import math")),
    "optimal_in_D_first": ("compute_optimal", optimal("""
    # the same derivation solved for D: D^(alpha+beta) = (beta B / (alpha A)) (C/6)^alpha
    D = (beta * B / (alpha * A)) ** (1 / (alpha + beta)) * (C / 6) ** (alpha / (alpha + beta))
    return C / (6 * D), D""")),
}
