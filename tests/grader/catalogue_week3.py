"""Week 3 submissions for the grader's own tests: known-wrong ones and correct variants.

Each wrong submission is a realistic mistake. The test suite grades each one and asserts it
loses points and, where the grader knows the mistake, that its message names it.
"""

HEADER = """
import torch
import torch.nn.functional as F
from torch import nn
"""

RMSNORM_REFERENCE_INIT = """
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
"""


def rmsnorm(forward: str, init: str = RMSNORM_REFERENCE_INIT) -> str:
    return f"{HEADER}\nclass RMSNorm(nn.Module):{init}\n    def forward(self, x):\n{forward}\n"


def swiglu(forward: str, bias: bool = False, down_in: str = "hidden_dim",
           down_out: str = "dim") -> str:
    return f"""{HEADER}
class SwiGLU(nn.Module):
    def __init__(self, dim, hidden_dim):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden_dim, bias={bias})
        self.up_proj = nn.Linear(dim, hidden_dim, bias={bias})
        self.down_proj = nn.Linear({down_in}, {down_out}, bias={bias})

    def forward(self, x):
{forward}
"""


# (exercise, code, a phrase the feedback must contain, or None)
WRONG = {
    "rmsnorm_layernorm": ("rmsnorm", rmsnorm("""
        x32 = x.float()
        x32 = x32 - x32.mean(-1, keepdim=True)
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)"""), "that is LayerNorm"),
    "rmsnorm_eps_outside_root": ("rmsnorm", rmsnorm("""
        x32 = x.float()
        y = x32 / (x32.pow(2).mean(-1, keepdim=True).sqrt() + self.eps)
        return self.weight * y.to(x.dtype)"""), "inside the square root"),
    "rmsnorm_wrong_axis": ("rmsnorm", rmsnorm("""
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean() + self.eps)
        return self.weight * y.to(x.dtype)"""), "last dimension"),
    "rmsnorm_no_weight": ("rmsnorm", rmsnorm("""
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)"""),
        "weight is never applied"),
    "rmsnorm_l2_norm": ("rmsnorm", rmsnorm("""
        x32 = x.float()
        return self.weight * (x32 / (x32.norm(dim=-1, keepdim=True) + self.eps)).to(x.dtype)"""),
        "L2 norm"),
    "rmsnorm_mean_square_not_root": ("rmsnorm", rmsnorm("""
        x32 = x.float()
        return self.weight * (x32 / (x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)"""),
        "root of the mean square"),
    "rmsnorm_ignores_eps_argument": ("rmsnorm", rmsnorm("""
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6)
        return self.weight * y.to(x.dtype)"""), "eps given to the constructor"),
    "rmsnorm_no_float32_upcast": ("rmsnorm", rmsnorm("""
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)"""),
        "in float32"),
    "rmsnorm_forgets_cast_back": ("rmsnorm", rmsnorm("""
        x32 = x.float()
        return self.weight.float() * x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)"""),
        "dtype"),
    "rmsnorm_random_weight_init": ("rmsnorm", rmsnorm("""
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)""", init="""
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.randn(dim))
"""), "start as ones"),
    "rmsnorm_parameter_misnamed": ("rmsnorm", rmsnorm("""
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.scale * y.to(x.dtype)""", init="""
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(dim))
"""), "state dict keys differ"),
    "rmsnorm_detached_output": ("rmsnorm", rmsnorm("""
        x32 = x.float().detach()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight * y.to(x.dtype)).detach()"""), "not connected to autograd"),
    "rmsnorm_changes_input_in_place": ("rmsnorm", rmsnorm("""
        inv = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        with torch.no_grad():
            x.mul_(inv.to(x.dtype))
        return self.weight * x"""), None),
    "rmsnorm_eps_default_wrong": ("rmsnorm", rmsnorm("""
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)""", init="""
    def __init__(self, dim, eps=1e-2):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
"""), None),
    "swiglu_gelu": ("swiglu", swiglu(
        "        return self.down_proj(F.gelu(self.gate_proj(x)) * self.up_proj(x))"), "GELU"),
    "swiglu_relu": ("swiglu", swiglu(
        "        return self.down_proj(F.relu(self.gate_proj(x)) * self.up_proj(x))"), "ReLU"),
    "swiglu_sigmoid_gate": ("swiglu", swiglu(
        "        return self.down_proj(torch.sigmoid(self.gate_proj(x)) * self.up_proj(x))"),
        "sigmoid gate"),
    "swiglu_gate_up_swapped": ("swiglu", swiglu(
        "        return self.down_proj(self.gate_proj(x) * F.silu(self.up_proj(x)))"), "swapped"),
    "swiglu_silu_after_product": ("swiglu", swiglu(
        "        return self.down_proj(F.silu(self.gate_proj(x) * self.up_proj(x)))"),
        "before multiplying"),
    "swiglu_no_up": ("swiglu", swiglu(
        "        return self.down_proj(F.silu(self.gate_proj(x)))"), "up projection is missing"),
    "swiglu_with_biases": ("swiglu", swiglu(
        "        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))", bias=True),
        "bias=False"),
    "swiglu_down_transposed": ("swiglu", swiglu(
        "        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))",
        down_in="dim", down_out="hidden_dim"), "down_proj.weight"),
    "swiglu_residual_added": ("swiglu", swiglu(
        "        return x + self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))"), None),
}

# library shortcuts (keys with "shortcut" must score zero), ignored contract defaults, the
# mirror images of named mistakes, and what a property case says when only its values are wrong
WRONG |= {
    "rmsnorm_F_rms_norm_shortcut": ("rmsnorm", rmsnorm("""
        y = F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps)
        return self.weight * y.to(x.dtype)"""), "not allowed"),
    "rmsnorm_nn_RMSNorm_shortcut": ("rmsnorm", rmsnorm("""
        norm = nn.RMSNorm(x.shape[-1], eps=self.eps)
        return self.weight * norm(x.float()).to(x.dtype)"""), "not allowed"),
    "rmsnorm_torch_alias_shortcut": ("rmsnorm", HEADER + """
from torch import rms_norm as normalize
""" + rmsnorm("""
        return self.weight * normalize(x.float(), (x.shape[-1],), eps=self.eps).to(x.dtype)"""),
        "not allowed"),
    "rmsnorm_aten_getattr_shortcut": ("rmsnorm", rmsnorm("""
        y = getattr(torch.ops.aten, "rms_norm")(x.float(), [x.shape[-1]], None, self.eps)
        return self.weight * y.to(x.dtype)"""), "not allowed"),
    "rmsnorm_llama_rmsnorm_shortcut": ("rmsnorm", HEADER + """
from transformers.models.llama.modeling_llama import LlamaRMSNorm
""" + rmsnorm("""
        return LlamaRMSNorm(x.shape[-1], self.eps).to(x.device)(x) * self.weight"""),
        "not allowed"),
    # a name the source check cannot see is refused when called
    "rmsnorm_computed_name_refused_at_run_time": ("rmsnorm", rmsnorm("""
        y = getattr(torch, "rms" + "_norm")(x.float(), (x.shape[-1],), eps=self.eps)
        return self.weight * y.to(x.dtype)"""), "is not allowed in this exercise"),
    "rmsnorm_default_eps_of_layernorm": ("rmsnorm", rmsnorm("""
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)""", init=RMSNORM_REFERENCE_INIT.replace("1e-6", "1e-5")),
        "must default to eps=1e-6 (the contract's); yours behaves like eps=1e-05"),
    "rmsnorm_multiplies_by_the_rms": ("rmsnorm", rmsnorm("""
        x32 = x.float()
        y = x32 * torch.sqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)"""), "you multiplied by the RMS"),
    "rmsnorm_sum_of_squares": ("rmsnorm", rmsnorm("""
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).sum(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)"""), "not their sum"),
    "rmsnorm_adds_the_weight": ("rmsnorm", rmsnorm("""
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight + y.to(x.dtype)"""), "you added the weight"),
    "rmsnorm_weight_before_the_cast": ("rmsnorm", rmsnorm("""
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight.float() * y).to(x.dtype)"""), "back to the input dtype first"),
    "rmsnorm_layernorm_is_scale_invariant_too": ("rmsnorm", rmsnorm("""
        x32 = x.float()
        x32 = x32 - x32.mean(-1, keepdim=True)
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)"""),
        "the property holds (scaling the input left your output unchanged), but the values "
        "are wrong: your norm subtracts the mean"),
    "swiglu_llama_mlp_shortcut": ("swiglu", HEADER + """
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaMLP


class SwiGLU(nn.Module):
    def __init__(self, dim, hidden_dim):
        super().__init__()
        mlp = LlamaMLP(LlamaConfig(hidden_size=dim, intermediate_size=hidden_dim))
        self.gate_proj, self.up_proj, self.down_proj = mlp.gate_proj, mlp.up_proj, mlp.down_proj
        self.mlp = [mlp]

    def forward(self, x):
        return self.mlp[0](x)
""", "not allowed"),
    "swiglu_gate_plus_up": ("swiglu", swiglu(
        "        return self.down_proj(F.silu(self.gate_proj(x)) + self.up_proj(x))"),
        "you added them"),
    "swiglu_no_silu": ("swiglu", swiglu(
        "        return self.down_proj(self.gate_proj(x) * self.up_proj(x))"),
        "SiLU gate is missing"),
}

# (exercise, code): correct however written; each must get full marks
CORRECT = {
    "rmsnorm_einsum": ("rmsnorm", rmsnorm("""
        x32 = x.float()
        ms = torch.einsum("...d,...d->...", x32, x32)[..., None] / x.shape[-1]
        return torch.einsum("d,...d->...d", self.weight, (x32 / torch.sqrt(ms + self.eps)).to(x.dtype))""")),
    "rmsnorm_float64": ("rmsnorm", rmsnorm("""
        x64 = x.double()
        y = x64 / (x64 * x64).mean(dim=-1, keepdim=True).add(self.eps).sqrt()
        return self.weight * y.to(x.dtype)""")),
    # a method with a forbidden function's name is the learner's own (self.name)
    "rmsnorm_method_named_rms_norm": ("rmsnorm", f"""{HEADER}
class RMSNorm(nn.Module):{RMSNORM_REFERENCE_INIT}
    def rms_norm(self, x32):
        return x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)

    def forward(self, x):
        return self.weight * self.rms_norm(x.float()).to(x.dtype)
"""),
    "rmsnorm_vector_norm": ("rmsnorm", rmsnorm("""
        x32 = x.to(torch.float32)
        rms = torch.linalg.vector_norm(x32, dim=-1, keepdim=True) / x.shape[-1] ** 0.5
        rms = torch.sqrt(rms**2 + self.eps)
        return (x32 / rms).type_as(x) * self.weight""")),
    "rmsnorm_row_loop": ("rmsnorm", rmsnorm("""
        flat = x.float().reshape(-1, x.shape[-1])
        rows = [r / torch.sqrt((r * r).sum() / r.numel() + self.eps) for r in flat]
        return self.weight * torch.stack(rows).reshape(x.shape).to(x.dtype)""")),
    "swiglu_manual_silu": ("swiglu", swiglu("""
        g = self.gate_proj(x)
        return self.down_proj(g * torch.sigmoid(g) * self.up_proj(x))""")),
    "swiglu_einsum_weights": ("swiglu", swiglu("""
        g = torch.einsum("...d,hd->...h", x, self.gate_proj.weight)
        u = torch.einsum("...d,hd->...h", x, self.up_proj.weight)
        return torch.einsum("...h,dh->...d", F.silu(g) * u, self.down_proj.weight)""")),
    "swiglu_float64": ("swiglu", swiglu("""
        x64 = x.double()
        g = x64 @ self.gate_proj.weight.double().T
        u = x64 @ self.up_proj.weight.double().T
        return ((g * torch.sigmoid(g) * u) @ self.down_proj.weight.double().T).to(x.dtype)""")),
}


# ---------------------------------------------------------------- best_activation
# Learners' readings of the activation experiment's results table, one mistake each.

def best(body: str, header: str = "") -> str:
    return f"{header}\ndef best_activation(final_losses):\n{body}\n"


BEST_MEANS = """    means = {k: sum(v) / len(v) for k, v in final_losses.items()}
    name = min(means, key=means.get)
"""

WRONG.update({
    "best_highest_loss": ("best_activation", best("""    means = {k: sum(v) / len(v) for k, v in final_losses.items()}
    name = max(means, key=means.get)
    others = min(min(v) for k, v in final_losses.items() if k != name)
    return name, all(len(v) > 1 for v in final_losses.values()) and max(final_losses[name]) < others"""),
        "the LOWEST mean"),
    "best_single_best_run": ("best_activation", best("""    name = min(final_losses, key=lambda k: min(final_losses[k]))
    others = min(min(v) for k, v in final_losses.items() if k != name)
    return name, all(len(v) > 1 for v in final_losses.values()) and max(final_losses[name]) < others"""),
        "not by their single best run"),
    "best_summed_runs": ("best_activation", best("""    name = min(final_losses, key=lambda k: sum(final_losses[k]))
    others = min(min(v) for k, v in final_losses.items() if k != name)
    return name, all(len(v) > 1 for v in final_losses.values()) and max(final_losses[name]) < others"""),
        "average the runs"),
    "best_single_seed_is_clear": ("best_activation", best(BEST_MEANS + """    others = min(min(v) for k, v in final_losses.items() if k != name)
    return name, max(final_losses[name]) < others"""), "says nothing about seed noise"),
    "best_only_runner_up": ("best_activation", best(BEST_MEANS + """    runner_up = sorted(means, key=means.get)[1]
    enough = all(len(v) > 1 for v in final_losses.values())
    return name, enough and max(final_losses[name]) < min(final_losses[runner_up])"""),
        "EVERY other activation"),
    "best_touching_ranges": ("best_activation", best(BEST_MEANS + """    others = min(min(v) for k, v in final_losses.items() if k != name)
    return name, all(len(v) > 1 for v in final_losses.values()) and max(final_losses[name]) <= others"""),
        "ranges that touch overlap"),
    "best_gap_beats_std": ("best_activation", best(BEST_MEANS + """    runner_up = sorted(means, key=means.get)[1]
    noise = max(statistics.stdev(final_losses[k]) for k in (name, runner_up))
    enough = all(len(v) > 1 for v in final_losses.values())
    return name, enough and means[runner_up] - means[name] > noise""", "import statistics"),
        "not when the gap between means beats a standard deviation"),
    "best_clear_never": ("best_activation", best(BEST_MEANS + "    return name, False"), ""),
    "best_swapped_order": ("best_activation", best(BEST_MEANS + """    others = min(min(v) for k, v in final_losses.items() if k != name)
    return all(len(v) > 1 for v in final_losses.values()) and max(final_losses[name]) < others, name"""),
        "the name first"),
    "best_hard_coded_swiglu": ("best_activation", best("    return 'swiglu', True"), ""),
})

CORRECT.update({
    "best_numpy": ("best_activation", best("""    names = list(final_losses)
    means = np.array([np.mean(final_losses[k]) for k in names])
    i = int(np.argmin(means))
    worst = np.max(final_losses[names[i]])
    rivals = [np.min(final_losses[k]) for k in names if k != names[i]]
    return names[i], bool(min(len(v) for v in final_losses.values()) >= 2) and worst < min(rivals)""",
        "import numpy as np")),
    "best_statistics_loops": ("best_activation", best("""    best_name, best_mean = None, float("inf")
    for name, runs in final_losses.items():
        m = statistics.mean(runs)
        if m < best_mean:
            best_name, best_mean = name, m
    if any(len(runs) < 2 for runs in final_losses.values()):
        return (best_name, False)
    for name, runs in final_losses.items():
        if name != best_name and min(runs) <= max(final_losses[best_name]):
            return (best_name, False)
    return (best_name, True)""", "import statistics")),
    "best_torch_list": ("best_activation", best("""    names = sorted(final_losses)
    means = torch.stack([torch.tensor(final_losses[k], dtype=torch.float64).mean() for k in names])
    name = names[int(means.argmin())]
    enough = all(len(v) >= 2 for v in final_losses.values())
    rivals = [min(v) for k, v in final_losses.items() if k != name]
    return [name, enough and max(final_losses[name]) < min(rivals)]""", "import torch")),
})
