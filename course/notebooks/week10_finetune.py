# %% [markdown]
# # Week 10: After pretraining: SFT, LoRA and DPO
#
# A pretrained model continues text; an assistant answers. This notebook takes a small base
# model, your own week-7 `MiniGPT` pretrained on a few tasks, and turns it into a tiny
# assistant in three steps that real models go through:
#
# 1. **supervised fine-tuning** (SFT) on a chat format, with the loss on the answers only;
# 2. the same with **LoRA**: a small low-rank update trains while the weights stay frozen;
# 3. **DPO**: learning from pairs of a right and a wrong answer, with no reward model.
#
# You write five pieces: `sequence_logprobs`, `sft_loss`, `LoRALinear`, `add_lora` and
# `dpo_loss`. Everything runs on a laptop CPU in a few minutes.
#
# Read the [week 10 lesson](../../../site/weeks/week10/lesson.md) first (also on the course
# site, Week 10 → Lesson). The conventions follow Hugging Face's PEFT (LoRA) and TRL (DPO).
# `F.cross_entropy` and `F.log_softmax` are allowed (week 7 used them); PEFT and TRL are not.
#
# **How this notebook works.** Write your code where it says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()`), then run the check cell below it. The visible checks catch
# the common mistakes; hidden tests with other inputs grade the submission. You can run the
# same grader yourself: save the notebook and run its last cell, **Grade this notebook**; or
# from a terminal:
#
# ```bash
# .venv/bin/autograder grade course/release/week10/finetune.ipynb   # from the course folder
# autograder grade finetune.ipynb   # from this folder, after `source .venv/bin/activate`
# ```

# %% role="locked"
import copy
import math
import time
from dataclasses import dataclass  # noqa: F401 (the given Example and ChatBatch use it)

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import Tensor, nn  # noqa: F401 (the answer cells are annotated with Tensor)

from autograder.parts import load_parts
from solutions.instruct import (  # noqa: F401 (END, PAD, chat_prompt: the given encode_chat, collate)
    END,
    LETTERS,
    PAD,
    TASKS,
    accuracy,
    answers,
    chat_prompt,
    chat_text,
    held_out_set,
    load_base,
    make_examples,
    optimizer_state_bytes,
    plain_text,
    preference_pairs,
)
from solutions.model import GPTConfig  # the published configurations, for a count below

torch.manual_seed(0)
# the models here are tiny: one thread is fastest, and it does not fight other processes
torch.set_num_threads(1)
print(f"torch {torch.__version__}")

# %% [markdown]
# ## Your model from week 7
#
# The next cell finds your week-7 notebook (`../week7/minigpt.ipynb`) and the notebooks of
# weeks 1 to 6 whose parts it is built from, runs their code, checks each part against the
# reference, and makes `MiniGPT` and `generate` available here. A part that is missing,
# unfinished or wrong is replaced by the reference one, and the table says so. Your
# instructor may require your own parts (`ALLOW_REFERENCE_PARTS = False`, or a set of the
# parts that may fall back).

# %% role="locked"
ALLOW_REFERENCE_PARTS = True  # instructors: False (or a set of names) requires the learner's own parts
parts = load_parts(["MiniGPT", "generate"], allow_reference=ALLOW_REFERENCE_PARTS)
globals().update(parts)

# %% [markdown]
# ## The base model, the tasks and the chat format
#
# The instruction set is written for the course, and every answer can be checked by code:
#
# | task | instruction | answer |
# |---|---|---|
# | add two numbers below 100 | `add:27+58` | `85` |
# | reverse 3 to 5 letters | `reverse:kqzt` | `tzqk` |
# | upper-case 3 to 6 letters | `upper:hixo` | `HIXO` |
#
# **The base model.** Pretraining a model that can do these tasks takes several minutes of
# CPU, so it was done once, by a script in the repository (`python -m solutions.instruct`),
# and its weights ship with the course (`course/data/week10_base.pt`, 0.3 MB; nothing is
# downloaded). It was pretrained with the week-7 trainer on 60,000 plain lines such as
# `add:27+58=85`: it has the skills, but it has never seen a conversation. The weights load
# into **your** `MiniGPT` by their state-dict names.
#
# **The tokenizer** is your week-2 byte-level BPE with GPT-2's pre-split (one digit per chunk,
# as LLaMA splits numbers), trained with just enough merges to make the task names single
# tokens, plus four **special tokens**. The words use only letters that occur in no task name,
# so no merge ever applies inside them: each letter stays one token, which makes reversing
# far easier for a tiny model (tokenization matters, week 2).

# %% role="locked"
base, tokenizer = load_base(model_class=MiniGPT)
base.eval()
n_params = sum(p.numel() for p in base.parameters())
print(f"base model: {type(base).__module__}.MiniGPT, {n_params:,} parameters, "
      f"{base.config.n_layers} layers of width {base.config.dim}")
print("learned merges:", [tokenizer.vocab[i].decode() for i in sorted(tokenizer.vocab)
                          if i >= 256])
print("special tokens:", tokenizer.special_tokens)
print("letters of the words:", LETTERS)

# %% [markdown]
# The data: a held-out **test set** that appeared neither in pretraining nor in any training
# data below, the SFT examples, and separate examples for the DPO pairs later. The tasks come
# in turn, so each third of a set is one task.

# %% role="locked" code="solutions.instruct:Example"
test = held_out_set()  # 150 examples, 50 per task
held_out = {ex.instruction for ex in test}
sft_data = make_examples(1200, seed=1, exclude=held_out)
dpo_data = make_examples(600, seed=2, exclude=held_out | {ex.instruction for ex in sft_data})
print(f"test {len(test)}, SFT {len(sft_data)}, DPO {len(dpo_data)} examples; for example:")
for ex in test[:3]:
    print(f"  pretraining line: {plain_text(ex)!r:28}  chat: {chat_text(ex.instruction, ex.answer)!r}")

# %% [markdown]
# How a batch is built (given): `encode_chat` turns one exchange into tokens and counts the
# prompt's; `collate` pads the rows with `<|pad|>` and **shifts once**: the model reads `ids`
# and at each position predicts the token in `labels` (the next one). The `mask` is True where
# that next token belongs to the response, the answer and `<|end|>`; the prompt and the
# padding are False. One example as the model sees it:

# %% role="locked" code="solutions.instruct:ChatBatch,encode_chat,collate"
batch = collate(tokenizer, [encode_chat(tokenizer, ex.instruction, ex.answer) for ex in test[:2]])
print(f"{'pos':>3}  {'reads':>14}  {'predicts':>14}  mask")
for t in range(batch.ids.shape[1]):
    reads = tokenizer.decode([batch.ids[1, t].item()])
    predicts = tokenizer.decode([batch.labels[1, t].item()])
    print(f"{t:>3}  {reads!r:>14}  {predicts!r:>14}  {batch.mask[1, t].item()}")

# %% [markdown]
# The base model can do the tasks in its own format, but asked in the chat format it has no
# idea what to do: the special tokens were never part of its training.

# %% role="locked"
plain = accuracy(base, tokenizer, test, chat=False, generate_fn=generate)
chat = accuracy(base, tokenizer, test, chat=True, generate_fn=generate)
print(f"{'':>22}" + "".join(f"{t:>9}" for t in (*TASKS, "all")))
print(f"{'plain format (add:..=)':>22}" + "".join(f"{plain[t]:>9.0%}" for t in (*TASKS, "all")))
print(f"{'chat format':>22}" + "".join(f"{chat[t]:>9.0%}" for t in (*TASKS, "all")))
for ex, got in zip(test[:3], answers(base, tokenizer, test[:3], generate_fn=generate),
                   strict=True):
    print(f"  {ex.instruction:>16} -> {got!r} (expected {ex.answer!r})")

# %% [markdown]
# ## Exercise 1: `sequence_logprobs`
#
# The log-probability of a response is the sum of its tokens' log-probabilities:
#
# $$\log \pi(y \mid x) = \sum_t m_t \, \log \mathrm{softmax}(z_t)[\text{label}_t]$$
#
# Write `sequence_logprobs(logits, labels, mask)`:
#
# - `logits` `(B, T, V)` are **already aligned** with `labels` `(B, T)`: `logits[:, t]`
#   scores `labels[:, t]`. Do not shift them again.
# - `mask` `(B, T)` is boolean: sum only where it is True. Every label is a valid id, the
#   masked ones included.
# - Return `(B,)`: one sum per sequence (0 for a row with no True), differentiable.
# - Take the log-softmax over the vocabulary (`F.log_softmax`, not `torch.log` of a softmax,
#   which underflows to `-inf` for unlikely tokens), and do it in float32 when the logits are
#   float16 or bfloat16 (keep float32 and float64 as they are).
#
# **Not allowed:** TRL's `selective_log_softmax` and `DPOTrainer.get_batch_logps`, which do
# this work. `F.log_softmax`, `gather` and `F.cross_entropy(..., reduction="none")` are the
# building blocks.

# %% role="answer" exercise="sequence_logprobs"

# %% role="test" exercise="sequence_logprobs"
logits = torch.randn(2, 5, 7)
labels = torch.randint(0, 7, (2, 5))
mask = torch.tensor([[False, True, True, False, False], [False, False, False, True, True]])
out = sequence_logprobs(logits, labels, mask)
assert out.shape == (2,), f"one log-probability per sequence: expected (2,), got {tuple(out.shape)}"
by_hand = torch.stack([sum(logits[b, t].log_softmax(-1)[labels[b, t]] for t in range(5)
                           if mask[b, t]) for b in range(2)])
assert not torch.allclose(out, by_hand / mask.sum(-1), atol=1e-5), "sum the tokens; do not average"
assert torch.allclose(out, by_hand, atol=1e-5), (
    "expected the sum of log_softmax(logits)[label] where mask is True (no shift: the logits "
    "are already aligned with the labels)")
assert sequence_logprobs(logits, labels, torch.zeros(2, 5, dtype=torch.bool)).eq(0).all(), (
    "a row whose mask is all False sums to 0")
assert torch.isfinite(sequence_logprobs(logits * 300, labels, mask)).all(), (
    "use log_softmax: log(softmax(x)) gives -inf for very unlikely tokens")
assert sequence_logprobs(logits.bfloat16(), labels, mask).dtype == torch.float32, (
    "compute in float32 for bfloat16 logits")
print("sequence_logprobs: visible checks passed")

# %% [markdown]
# ## Exercise 2: `sft_loss`
#
# The SFT loss is the mean cross-entropy over **every response token of the batch**:
#
# $$\mathcal{L}_\text{SFT} = -\frac{\sum_{b,t} m_{b,t} \log p(\text{label}_{b,t})}{\sum_{b,t} m_{b,t}}$$
#
# Write `sft_loss(logits, labels, loss_mask)`, returning a 0-dimensional tensor. Every
# counted token weighs the same: do **not** average per sequence first, and do not count the
# prompt or the padding. (`F.cross_entropy` with `ignore_index` does the job in one line;
# your `sequence_logprobs` in another.)
#
# **Not allowed:** `transformers`' `ForCausalLMLoss` and TRL's `SFTTrainer`.

# %% role="answer" exercise="sft_loss"

# %% role="test" exercise="sft_loss"
logits = torch.randn(2, 6, 9)
labels = torch.randint(0, 9, (2, 6))
mask = torch.tensor([[False, True, False, False, False, False], [False, False, True, True, True, True]])
nll = -logits.log_softmax(-1).gather(-1, labels[..., None])[..., 0]
loss = sft_loss(logits, labels, mask)
assert loss.dim() == 0, f"return a single number (0-dimensional), got shape {tuple(loss.shape)}"
assert not torch.isclose(loss, nll.mean(), atol=1e-5), "the prompt and padding must not count"
per_sequence = ((nll * mask).sum(-1) / mask.sum(-1)).mean()
assert not torch.isclose(loss, per_sequence, atol=1e-5), (
    "average over all the counted tokens at once, not per sequence then over the batch")
assert torch.isclose(loss, (nll * mask).sum() / mask.sum(), atol=1e-5), (
    "expected the mean cross-entropy over the positions where loss_mask is True")
print("sft_loss: visible checks passed")

# %% [markdown]
# ## Supervised fine-tuning
#
# The training loop is the usual one (AdamW, a short warm-up, then a cosine decay of the
# learning rate); what makes it SFT is the data (chat examples) and your loss (the answers
# only). Every parameter trains: full fine-tuning. We fine-tune a **copy** of the base model,
# which is needed again for LoRA.

# %% role="locked" code="solutions.instruct:train_sft"

# %% role="locked"
SFT_STEPS = 300
torch.manual_seed(0)
sft_model = copy.deepcopy(base)
start = time.perf_counter()
sft_history, sft_optimizer = train_sft(sft_model, tokenizer, sft_data, SFT_STEPS, lr=3e-3)
sft_time = time.perf_counter() - start
sft_acc = accuracy(sft_model, tokenizer, test, generate_fn=generate)
print(f"{SFT_STEPS} steps in {sft_time:.1f} s; SFT loss {sft_history[0]:.2f} -> "
      f"{sft_history[-1]:.3f}")
print(f"{'chat accuracy':>16}" + "".join(f"{t:>9}" for t in (*TASKS, "all")))
for name, acc in (("base", chat), ("after SFT", sft_acc)):
    print(f"{name:>16}" + "".join(f"{acc[t]:>9.0%}" for t in (*TASKS, "all")))
for ex, got in zip(test[:3], answers(sft_model, tokenizer, test[:3], generate_fn=generate),
                   strict=True):
    print(f"  {ex.instruction:>16} -> {got!r} (expected {ex.answer!r})")

# %% [markdown]
# ## Exercise 3: `LoRALinear`
#
# LoRA (Hu et al., 2021) keeps a pretrained `nn.Linear` frozen and learns a low-rank update
# beside it:
#
# $$y = \mathrm{base}(x) + \frac{\alpha}{r}\, B A\, \mathrm{dropout}(x), \qquad
# A \in \mathbb{R}^{r \times d_\text{in}},\; B \in \mathbb{R}^{d_\text{out} \times r}$$
#
# Write `LoRALinear(base, r, alpha, dropout=0.0)` with
#
# - `self.base`: the given layer, frozen (`requires_grad=False` on its weight and bias);
# - `self.lora_A = nn.Linear(in_features, r, bias=False)`, initialised as `nn.Linear`
#   initialises itself (Kaiming-uniform with `a=math.sqrt(5)`, PEFT's default), and
#   `self.lora_B = nn.Linear(r, out_features, bias=False)` initialised to **zeros**, so the
#   layer equals its base at step 0;
# - `self.scaling = alpha / r`;
# - `forward(x) = base(x) + scaling * lora_B(lora_A(dropout(x)))`: dropout on the adapter's
#   input only, active in train mode only;
# - `merge()`: a **new plain** `nn.Linear` with weight `W + scaling * B @ A` and the base's bias
#   (or no bias if the base has none), leaving `self` unchanged.
#
# The state dict then holds `base.weight` (and `base.bias`), `lora_A.weight`, `lora_B.weight`.
#
# **Not allowed:** PEFT (`get_peft_model`, `LoraConfig`, its `LoraLayer` classes) and
# loralib; `nn.Linear`, `nn.init` and `nn.Dropout` are the building blocks. The default
# `dropout=0.0` is graded: two forwards in train mode must give the same output.

# %% role="answer" exercise="lora_linear"

# %% role="test" exercise="lora_linear"
base_layer = nn.Linear(16, 12)
layer = LoRALinear(base_layer, r=4, alpha=8)
assert {k: tuple(v.shape) for k, v in layer.state_dict().items()} == {
    "base.weight": (12, 16), "base.bias": (12,), "lora_A.weight": (4, 16),
    "lora_B.weight": (12, 4)}, "state dict: base.weight, base.bias, lora_A.weight, lora_B.weight"
assert {n for n, p in layer.named_parameters() if p.requires_grad} == {
    "lora_A.weight", "lora_B.weight"}, "only lora_A and lora_B train: freeze the base"
assert layer.scaling == 2.0, "scaling = alpha / r"
assert not layer.lora_B.weight.any(), "lora_B starts at zero"
bound = 1 / math.sqrt(16)
assert 0 < layer.lora_A.weight.abs().max() <= bound, (
    "lora_A starts as nn.Linear does: uniform in +-1/sqrt(in_features)")
x = torch.randn(3, 5, 16)
assert torch.equal(layer(x), base_layer(x)), "at step 0 the layer equals its base"
with torch.no_grad():
    layer.lora_B.weight.normal_()
expected = base_layer(x) + 2.0 * x @ layer.lora_A.weight.T @ layer.lora_B.weight.T
assert torch.allclose(layer(x), expected, atol=1e-5), "base(x) + (alpha / r) * B(A(x))"
merged = layer.merge()
assert type(merged) is nn.Linear, "merge() returns a plain nn.Linear"
assert torch.allclose(merged(x), layer(x), atol=1e-5), "merged and unmerged outputs agree"
assert torch.allclose(layer(x), expected, atol=1e-5), "merge() leaves the LoRA layer unchanged"
print("LoRALinear: visible checks passed")

# %% [markdown]
# ## Exercise 4: `add_lora`
#
# Write `add_lora(model, r, alpha, targets=("q_proj", "v_proj"))`: replace every `nn.Linear`
# whose **attribute name** is in `targets`, at any depth, by a `LoRALinear` around it; freeze
# every other parameter (embeddings, norms, `lm_head`, the other projections); and return the
# number of trainable parameters (an `int`). The default targets are the query and value
# projections, the LoRA paper's choice. Collect the layers first, then replace them:
# changing modules while iterating over `named_modules()` is unsafe.
#
# **Not allowed:** PEFT's `get_peft_model` and `inject_adapter_in_model`, loralib's
# `mark_only_lora_as_trainable`. The default `targets` is graded. The grader runs your
# `add_lora` with the reference `LoRALinear`, so a mistake in exercise 3 is not charged twice.

# %% role="answer" exercise="add_lora"

# %% role="test" exercise="add_lora"
model = copy.deepcopy(base)
idx = torch.randint(0, base.config.vocab_size, (2, 9))
with torch.no_grad():
    before = model(idx)[0]
count = add_lora(model, r=4, alpha=8)
cfg = base.config
kv_dim = cfg.n_kv_heads * cfg.dim // cfg.n_heads
expected = cfg.n_layers * 4 * ((cfg.dim + cfg.dim) + (cfg.dim + kv_dim))
assert isinstance(count, int), f"return the count as an int, not {type(count).__name__}"
trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
assert trainable == expected, (
    f"{trainable:,} parameters train; expected {expected:,} (LoRA on q_proj and v_proj only, "
    "everything else frozen)")
assert count == trainable, f"add_lora returned {count:,}; {trainable:,} parameters train"
assert all(isinstance(layer.self_attn.q_proj, LoRALinear)
           and isinstance(layer.self_attn.v_proj, LoRALinear)
           and not isinstance(layer.self_attn.k_proj, LoRALinear) for layer in model.layers)
with torch.no_grad():
    assert torch.allclose(model(idx)[0], before, atol=1e-6), (
        "the model's output must not change when the adapters are added (B starts at zero)")
print("add_lora: visible checks passed")

# %% [markdown]
# ## LoRA on the same task
#
# The same SFT from the same base model, but only the adapters train. We adapt every
# projection of attention and MLP and the output layer `lm_head`, as QLoRA and most practice
# since do, with rank 8; a larger learning rate suits the small update.
#
# One thing LoRA cannot do is give a meaning to tokens the base model never saw: our chat's
# special tokens have untrained embedding rows, and LoRA never touches the embeddings. PEFT
# offers two ways out, training the whole embedding matrix next to the adapters
# (`modules_to_save`) or only the new rows (`trainable_token_indices`); `TrainableTokens`
# below is the second, four rows of 64 numbers. (Without it this LoRA run falls far short of
# full fine-tuning: try it, see the end of the notebook.)

# %% role="locked" code="solutions.instruct:TrainableTokens"

# %% role="locked"
LORA_STEPS, RANK, ALPHA = 300, 8, 16
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head")
torch.manual_seed(0)
lora_model = copy.deepcopy(base)
n_adapters = add_lora(lora_model, RANK, ALPHA, TARGETS)
lora_model.embed_tokens = TrainableTokens(lora_model.embed_tokens,
                                          sorted(tokenizer.special_tokens.values()))
n_lora = sum(p.numel() for p in lora_model.parameters() if p.requires_grad)
print(f"LoRA adapters {n_adapters:,} + special-token rows {n_lora - n_adapters:,} = "
      f"{n_lora:,} trainable parameters")
start = time.perf_counter()
lora_history, lora_optimizer = train_sft(lora_model, tokenizer, sft_data, LORA_STEPS, lr=1e-2)
lora_time = time.perf_counter() - start
lora_acc = accuracy(lora_model, tokenizer, test, generate_fn=generate)

print(f"{'':>12}{'trainable':>12}{'AdamW state':>14}{'time':>8}{'accuracy':>10}")
for name, n, opt, seconds, acc in (
        ("full SFT", n_params, sft_optimizer, sft_time, sft_acc),
        (f"LoRA r={RANK}", n_lora, lora_optimizer, lora_time, lora_acc)):
    print(f"{name:>12}{n:>12,}{optimizer_state_bytes(opt) / 1024:>11.0f} KiB{seconds:>7.1f}s"
          f"{acc['all']:>10.0%}")

fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(sft_history, label="full fine-tuning")
ax.plot(lora_history, label=f"LoRA (r={RANK}, {n_lora / n_params:.0%} of the parameters)")
ax.set(xlabel="step", ylabel="SFT loss (response tokens)", yscale="log")
ax.legend()
plt.show()

# %% [markdown]
# At this size the model is small next to its activations, so time barely changes; the
# memory saving is what scales. The same arithmetic for Llama 2 7B, built on PyTorch's
# `meta` device (shapes, no memory) with your `MiniGPT` and your `add_lora`, at the LoRA
# paper's setting (r = 8 on `q_proj` and `v_proj`):

# %% role="locked"
with torch.device("meta"):
    llama = MiniGPT(GPTConfig.preset("llama2_7b"))
total = sum(p.numel() for p in llama.parameters())
adapters = add_lora(llama, r=8, alpha=16)
print(f"Llama 2 7B: {total:,} parameters; LoRA r=8 on q_proj, v_proj: {adapters:,} trainable "
      f"({adapters / total:.3%})")
print(f"AdamW moments (2 x float32): full {2 * 4 * total / 1e9:.1f} GB, "
      f"LoRA {2 * 4 * adapters / 2**20:.0f} MiB")

# %% [markdown]
# **Merging.** After training, each `LoRALinear` can become one plain `nn.Linear` (and the
# trained token rows can be written into a plain `nn.Embedding`). The merged model has the
# original shape and no extra cost at inference; its outputs and greedy answers are those of
# the adapted model.

# %% role="locked"
merged_model = copy.deepcopy(lora_model)
for module in list(merged_model.modules()):
    for name, child in list(module.named_children()):
        if isinstance(child, LoRALinear | TrainableTokens):
            setattr(module, name, child.merge())
assert not any(isinstance(m, LoRALinear | TrainableTokens) for m in merged_model.modules())
assert sum(p.numel() for p in merged_model.parameters()) == n_params
idx = collate(tokenizer, [encode_chat(tokenizer, ex.instruction, ex.answer) for ex in test]).ids
with torch.no_grad():
    gap = (merged_model.eval()(idx)[0] - lora_model.eval()(idx)[0]).abs().max().item()
same = answers(merged_model, tokenizer, test, generate_fn=generate) == answers(
    lora_model, tokenizer, test, generate_fn=generate)
print(f"merged vs unmerged: largest logit difference {gap:.1e} (float32 rounding); "
      f"identical greedy answers on all {len(test)} test prompts: {same}")

# %% [markdown]
# ## Exercise 5: `dpo_loss`
#
# DPO (Rafailov et al., 2023) learns from pairs: for a prompt, a **chosen** answer $y_w$ and
# a **rejected** one $y_l$. With the policy $\pi_\theta$ (the model being trained) and a frozen
# **reference** $\pi_\text{ref}$ (here the SFT model), let
#
# $$h = \big(\log \pi_\theta(y_w) - \log \pi_\theta(y_l)\big) - \big(\log \pi_\text{ref}(y_w) - \log \pi_\text{ref}(y_l)\big).$$
#
# The loss per pair, with conservative label smoothing $\varepsilon$, is
#
# $$\ell = -(1 - \varepsilon)\,\log\sigma(\beta h) - \varepsilon\,\log\sigma(-\beta h),$$
#
# and the implicit rewards are $\beta\,(\log\pi_\theta(y) - \log\pi_\text{ref}(y))$ for the
# chosen and for the rejected answer.
#
# Write `dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
# ref_rejected_logps, beta=0.1, label_smoothing=0.0)`, each input `(B,)` (from
# `sequence_logprobs`), returning `(losses, chosen_rewards, rejected_rewards)`, each `(B,)`:
# the per-pair losses (the training loop takes their mean) and the rewards (detach them: they
# are for logging). Use `F.logsigmoid`, which stays finite where `log(sigmoid(x))` would not.
#
# **Not allowed:** TRL's `DPOTrainer` and OpenRLHF's `DPOLoss`. The defaults `beta=0.1` and
# `label_smoothing=0.0` are graded.

# %% role="answer" exercise="dpo_loss"

# %% role="test" exercise="dpo_loss"
pc, pr = torch.tensor([-3.0, -8.0, -5.0]), torch.tensor([-6.0, -4.0, -5.5])
rc, rr = torch.tensor([-4.0, -7.0, -5.0]), torch.tensor([-5.0, -5.0, -6.0])
losses, chosen, rejected = dpo_loss(pc, pr, pc.clone(), pr.clone())
assert losses.shape == (3,), f"one loss per pair: expected (3,), got {tuple(losses.shape)}"
assert torch.allclose(losses, torch.full((3,), math.log(2))), (
    "when the policy equals the reference every loss is log 2")
assert not chosen.any() and not rejected.any(), "...and the rewards are 0"
losses, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta=0.5)
h = (pc - pr) - (rc - rr)
assert torch.allclose(losses, -F.logsigmoid(0.5 * h), atol=1e-6), "-log sigmoid(beta * h)"
assert torch.allclose(chosen, 0.5 * (pc - rc)) and torch.allclose(rejected, 0.5 * (pr - rr)), (
    "rewards: beta * (policy - reference), for the chosen and the rejected answers")
assert torch.allclose(dpo_loss(pc, pr, rc, rr)[0], -F.logsigmoid(0.1 * h), atol=1e-6), (
    "the default beta is 0.1 and the default label_smoothing 0")
smoothed = dpo_loss(pc, pr, rc, rr, beta=0.5, label_smoothing=0.2)[0]
assert torch.allclose(smoothed, -0.8 * F.logsigmoid(0.5 * h) - 0.2 * F.logsigmoid(-0.5 * h),
                      atol=1e-6), "label smoothing: -(1 - eps) log s(beta h) - eps log s(-beta h)"
print("dpo_loss: visible checks passed")

# %% [markdown]
# ## DPO on preference pairs
#
# The pairs come from the same tasks: for each instruction, the right answer is chosen and a
# plausible mistake is rejected (a sum off by 1 or 10, a word half reversed or left as it was,
# a letter left in lower case). We hold out the pairs of the test prompts to measure on.
#
# The **reference** is a frozen copy of the SFT model; the **policy** starts as another copy.
# `train_dpo` scores both answers of each pair under both models with your
# `sequence_logprobs`, and your `dpo_loss` trains the policy. `preference_stats` reports the
# implicit rewards on held-out pairs: their mean for the chosen and the rejected answers, the
# margin between them, and the **preference accuracy** (the fraction of pairs whose chosen
# answer has the higher implicit reward).

# %% role="locked" code="solutions.instruct:response_logprobs,pair_batch,preference_stats,train_dpo"

# %% role="locked"
train_pairs = preference_pairs(dpo_data, seed=3)
test_pairs = preference_pairs(test, seed=4)
for instruction, good, bad in train_pairs[:3]:
    print(f"  {instruction:>16}: chosen {good!r}, rejected {bad!r}")

DPO_STEPS, BETA, DPO_LR = 100, 0.1, 3e-5
reference = copy.deepcopy(sft_model).eval()
policy = copy.deepcopy(sft_model)
reference_before = {k: v.clone() for k, v in reference.state_dict().items()}
before = preference_stats(policy, reference, tokenizer, test_pairs, BETA)
start = time.perf_counter()
dpo_history = train_dpo(policy, reference, tokenizer, train_pairs, DPO_STEPS, beta=BETA,
                        lr=DPO_LR)
print(f"{DPO_STEPS} DPO steps in {time.perf_counter() - start:.1f} s")
after = preference_stats(policy, reference, tokenizer, test_pairs, BETA)
frozen = all(torch.equal(v, reference.state_dict()[k]) for k, v in reference_before.items())
print(f"{'held-out pairs':>16}{'chosen':>9}{'rejected':>10}{'margin':>9}{'accuracy':>10}")
for name, s in (("before DPO", before), ("after DPO", after)):
    print(f"{name:>16}{s['chosen']:>9.3f}{s['rejected']:>10.3f}{s['margin']:>9.3f}"
          f"{s['accuracy']:>10.0%}")
print(f"reference unchanged: {frozen}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3))
for ax, key, title in zip(axes, ("margin", "accuracy"), ("reward margin (chosen - rejected)",
                                                          "preference accuracy"),
                          strict=True):
    values = [r[key] for r in dpo_history]
    smooth = [sum(values[max(0, i - 9):i + 1]) / min(i + 1, 10) for i in range(len(values))]
    ax.plot(values, alpha=0.4, label="each batch")
    ax.plot(smooth, label="mean of the last 10")
    ax.set(xlabel="DPO step", title=title)
axes[0].legend()
plt.show()

# %% [markdown]
# Before the first step the policy *is* the reference: every implicit reward is 0, so no
# pair counts as ranked right (accuracy 0 %) and every loss is $\log 2$. DPO then raises the
# chosen answers against the rejected ones, relative to the reference, on pairs it never
# trained on. The SFT model already preferred the right answers in absolute terms, which is
# why DPO is usually run after SFT: it sharpens a preference the model can already express.
#
# ## The effect of $\beta$
#
# $\beta$ sets the pull toward the reference. Train from the same SFT model with a smaller and
# a larger $\beta$, for the same number of steps, and look at how far the policy moved: the
# mean change of the log-probability of the chosen and of the rejected answers (in nats, not
# scaled by $\beta$), $h$ (the change of the log-ratio between them), and what that did to
# its greedy answers.

# %% role="locked"
policies = {BETA: policy}
for beta in (0.02, 0.5):
    policies[beta] = copy.deepcopy(sft_model)
    train_dpo(policies[beta], reference, tokenizer, train_pairs, DPO_STEPS, beta=beta, lr=DPO_LR)
print(f"{'beta':>6}{'pref. acc.':>11}{'h (nats)':>10}{'chosen':>9}{'rejected':>10}"
      f"{'greedy acc.':>13}")
for beta in sorted(policies):
    s = preference_stats(policies[beta], reference, tokenizer, test_pairs, beta)
    chosen_moved, rejected_moved = s["chosen"] / beta, s["rejected"] / beta
    greedy = accuracy(policies[beta], tokenizer, test, generate_fn=generate)["all"]
    print(f"{beta:>6}{s['accuracy']:>11.0%}{chosen_moved - rejected_moved:>10.2f}"
          f"{chosen_moved:>9.2f}{rejected_moved:>10.2f}{greedy:>13.0%}")
print(f"{'SFT':>6}{'':>11}{0:>10.2f}{0:>9.2f}{0:>10.2f}{sft_acc['all']:>13.0%}")

# %% [markdown]
# The smaller $\beta$, the further the policy moves for the same data: the rejected answers
# fall furthest, but the chosen ones fall too (DPO only asks for the *difference* to grow),
# and the greedy answers can get worse. A larger $\beta$ saturates the loss after a small
# move and keeps the policy near the reference. That is the KL constraint of RLHF at work,
# without a reward model.

# %% [markdown]
# ## Things to try
#
# - Train SFT with the prompt **not** masked (pass `torch.ones_like(mask)` as the mask inside
#   `train_sft`): does the chat accuracy after the same number of steps change?
# - LoRA without `TrainableTokens` (leave the special tokens' embeddings untrained): what
#   happens to the accuracy, and why can the adapters not make up for it?
# - LoRA with `targets=("q_proj", "v_proj")` only, and ranks 1, 2 and 32: how does the
#   accuracy depend on the rank and on which layers are adapted?
# - DPO with `label_smoothing=0.2`: what happens to the margin?
# - DPO straight from the base model instead of the SFT model (the reference then is the base
#   model): why does it not work as well?


# %% [markdown]
# ## Grade this notebook
#
# Save the notebook first (Ctrl+S): the grader reads the saved file. This cell runs the hidden
# tests your instructor uses, in a separate process started with this kernel's own Python, so
# it works wherever JupyterLab was started.

# %% role="locked"
# NBVAL_SKIP
import os
import subprocess
import sys

if os.environ.get("NBGRADER_EXECUTION") != "autograde":  # nbgrader grades after its own run
    grading = subprocess.run([sys.executable, "-m", "autograder", "grade", "finetune.ipynb"],
                             capture_output=True, text=True)
    print(grading.stdout + grading.stderr)
