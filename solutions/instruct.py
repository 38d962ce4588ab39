"""Week 10 data and training loops: a small instruction set, a chat format, SFT and DPO.

The instruction set is written for the course and every answer can be checked by code:

    add:27+58      -> 85        (two numbers below 100)
    reverse:kqzt   -> tzqk      (3 to 5 letters)
    upper:hixo     -> HIXO      (3 to 6 letters)

The **base model** is a tiny MiniGPT pretrained on plain lines such as ``add:27+58=85``, so it
can do the tasks in that format but has never seen a chat. The **chat format** wraps the same
instruction in special tokens, ``<|user|>add:27+58<|assistant|>85<|end|>``, which supervised
fine-tuning teaches. The words' letters avoid those of the instruction words, so that each of
them stays one token of the week-2 BPE (merges are learned for ``add``, ``reverse`` and
``upper`` only): a tiny model reverses single letters far more easily than merged pairs.

    python -m solutions.instruct            # pretrain the base model: course/data/week10_base.pt

The checkpoint holds the configuration, the weights (float16) and the tokenizer's merges; it is
made by this script only (6,000 steps, several minutes on a CPU; it prints how long it took),
and nothing is downloaded.
"""

import argparse
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from solutions.data import Dataset
from solutions.finetune import dpo_loss, sequence_logprobs, sft_loss
from solutions.model import GPTConfig, MiniGPT, generate
from solutions.tokenizer import GPT2_SPLIT_PATTERN, BPETokenizer

CHECKPOINT = Path(__file__).resolve().parents[1] / "course" / "data" / "week10_base.pt"

USER, ASSISTANT, END, PAD = "<|user|>", "<|assistant|>", "<|end|>", "<|pad|>"
TASKS = ("add", "reverse", "upper")
# letters that occur in none of the task names, so no BPE merge ever applies inside a word
LETTERS = "".join(c for c in "abcdefghijklmnopqrstuvwxyz" if c not in "".join(TASKS))
# GPT-2's pre-split with one digit per chunk (as LLaMA splits numbers into digits)
PATTERN = GPT2_SPLIT_PATTERN.replace(r" ?\d+", r"\d")
N_MERGES = 11  # exactly the merges that make "add", "reverse" and "upper" single tokens
TEST_SEED, PRETRAIN_SEED = 10, 0


@dataclass(frozen=True)
class Example:
    task: str
    instruction: str  # e.g. "add:27+58"
    answer: str  # e.g. "85"


def make_example(rng: random.Random, task: str) -> Example:
    if task == "add":
        a, b = rng.randrange(100), rng.randrange(100)
        return Example(task, f"add:{a}+{b}", str(a + b))
    word = "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 5 if task == "reverse"
                                                                 else 6)))
    answer = word[::-1] if task == "reverse" else word.upper()
    return Example(task, f"{task}:{word}", answer)


def make_examples(n: int, seed: int, exclude: set[str] = frozenset(),
                  distinct: bool = True) -> list[Example]:
    """``n`` examples, the tasks in turn, none whose instruction is in ``exclude``, and no
    instruction twice when ``distinct``."""
    rng, out, seen = random.Random(seed), [], set(exclude)
    while len(out) < n:
        ex = make_example(rng, TASKS[len(out) % len(TASKS)])
        if ex.instruction not in seen:
            if distinct:
                seen.add(ex.instruction)
            out.append(ex)
    return out


def held_out_set(n: int = 150) -> list[Example]:
    """The held-out examples: never in the pretraining text, the SFT data or the DPO pairs."""
    return make_examples(n, TEST_SEED)


def wrong_answer(rng: random.Random, ex: Example) -> str:
    """A plausible mistake: a sum off by 1 or 10, a word left as it was or half done."""
    if ex.task == "add":
        a, b = map(int, ex.instruction.removeprefix("add:").split("+"))
        wrong = [s for s in (a + b - 10, a + b - 1, a + b + 1, a + b + 10) if s >= 0]
        return str(rng.choice(wrong))
    word = ex.instruction.split(":", 1)[1]
    if ex.task == "reverse":
        swapped = word[1] + word[0] + word[2:]  # the first two letters swapped
        options = [w for w in (word, swapped[::-1], word[-1] + word[1:-1] + word[0])
                   if w != ex.answer]
        return rng.choice(options or [word + word[0]])
    i = rng.randrange(len(word))  # upper: all lowercase, or one letter left lowercase
    return rng.choice([word, ex.answer[:i] + word[i] + ex.answer[i + 1:]])


def plain_text(ex: Example) -> str:
    """The pretraining format: one line, ``instruction=answer``."""
    return f"{ex.instruction}={ex.answer}\n"


def chat_prompt(instruction: str) -> str:
    """The chat template's prompt: the user turn, then the assistant's turn begins."""
    return f"{USER}{instruction}{ASSISTANT}"


def chat_text(instruction: str, answer: str) -> str:
    return f"{chat_prompt(instruction)}{answer}{END}"


# ---------------------------------------------------------------- the tokenizer


def make_tokenizer(text: str) -> BPETokenizer:
    """The week-2 BPE with the chat's special tokens, whose ids follow the merges."""
    base = 256 + N_MERGES
    specials = {s: base + i for i, s in enumerate((USER, ASSISTANT, END, PAD))}
    tokenizer = BPETokenizer(PATTERN, specials)
    tokenizer.train(text, base)
    return tokenizer


def tokenizer_from_merges(merges: list[list[int]], specials: dict[str, int]) -> BPETokenizer:
    tokenizer = BPETokenizer(PATTERN, specials)
    for a, b, new_id in merges:
        tokenizer.merges[(a, b)] = new_id
        tokenizer.vocab[new_id] = tokenizer.vocab[a] + tokenizer.vocab[b]
    return tokenizer


# ---------------------------------------------------------------- batches
# (the tokenizer's type is written as a string in the functions the notebook shows: the
# grader runs their definitions where the course's own packages cannot be imported)


@dataclass
class ChatBatch:
    """Padded sequences for a causal LM, already shifted: ``labels[:, t]`` is the token
    after ``ids[:, t]``, so ``model(ids)`` logits line up with ``labels``. ``mask`` is True
    where the label is a response token (the answer and ``<|end|>``), False on the prompt
    and the padding.

    Shapes: ``ids``, ``labels``: ``(B, T)`` int64; ``mask``: ``(B, T)`` bool.
    """

    ids: Tensor
    labels: Tensor
    mask: Tensor


def encode_chat(tokenizer: "BPETokenizer", instruction: str, answer: str) -> tuple[list[int], int]:
    """The tokens of one chat exchange and the number of prompt tokens."""
    prompt = tokenizer.encode(chat_prompt(instruction))
    response = tokenizer.encode(answer) + [tokenizer.special_tokens[END]]
    return prompt + response, len(prompt)


def collate(tokenizer: "BPETokenizer", encoded: list[tuple[list[int], int]]) -> ChatBatch:
    """Pad ``encode_chat`` outputs on the right and shift them into ``(ids, labels, mask)``."""
    pad = tokenizer.special_tokens[PAD]
    width = max(len(tokens) for tokens, _ in encoded) - 1
    ids = torch.full((len(encoded), width), pad)
    labels = torch.full((len(encoded), width), pad)
    mask = torch.zeros(len(encoded), width, dtype=torch.bool)
    for row, (tokens, n_prompt) in enumerate(encoded):
        n = len(tokens) - 1
        ids[row, :n] = torch.tensor(tokens[:-1])
        labels[row, :n] = torch.tensor(tokens[1:])
        mask[row, n_prompt - 1:n] = True  # labels from the first response token on
    return ChatBatch(ids, labels, mask)


def response_logprobs(model: nn.Module, batch: ChatBatch) -> Tensor:
    """``(B,)`` summed log-probabilities of each row's response under ``model``."""
    logits, _ = model(batch.ids)  # (B, T, V), aligned with batch.labels
    return sequence_logprobs(logits, batch.labels, batch.mask)


class TrainableTokens(nn.Module):
    """An embedding whose rows ``token_ids`` train while the others stay frozen, as PEFT's
    ``trainable_token_indices`` does: LoRA alone cannot give a meaning to tokens the base
    model never saw (here the chat's special tokens), because it never touches the embeddings.

    State dict: ``base.weight`` ``(V, dim)`` (frozen), ``delta`` ``(len(token_ids), dim)``
    (trainable, starts at zero) and the buffer ``token_ids``.
    """

    def __init__(self, base: nn.Embedding, token_ids: list[int]) -> None:
        super().__init__()
        self.base = base.requires_grad_(False)
        self.register_buffer("token_ids", torch.tensor(token_ids))
        self.delta = nn.Parameter(torch.zeros(len(token_ids), base.embedding_dim))

    def forward(self, idx: Tensor) -> Tensor:
        weight = self.base.weight.index_add(0, self.token_ids, self.delta)  # (V, dim)
        return nn.functional.embedding(idx, weight)

    @torch.no_grad()
    def merge(self) -> nn.Embedding:
        """A plain ``nn.Embedding`` with the trained rows written in."""
        weight = self.base.weight.index_add(0, self.token_ids, self.delta)
        return nn.Embedding.from_pretrained(weight, freeze=False)


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def answers(model: nn.Module, tokenizer: BPETokenizer, examples: list[Example],
            chat: bool = True, generate_fn: Callable = generate,
            max_new_tokens: int = 8) -> list[str]:
    """Greedy answers to ``examples``, in the chat format (cut at ``<|end|>``) or the plain
    one (prompt ``instruction=``, cut at the newline). Prompts of equal length share a batch."""
    was_training = model.training
    model.eval()
    stop = tokenizer.special_tokens[END] if chat else tokenizer.encode("\n")[0]
    prompts = [tokenizer.encode(chat_prompt(ex.instruction) if chat else f"{ex.instruction}=")
               for ex in examples]
    out: list[str] = [""] * len(examples)
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_length.setdefault(len(p), []).append(i)
    for length, rows in by_length.items():
        idx = torch.tensor([prompts[i] for i in rows])  # (n, length)
        new = generate_fn(model, idx, max_new_tokens, temperature=0)[:, length:]
        for i, tokens in zip(rows, new.tolist(), strict=True):
            tokens = tokens[:tokens.index(stop)] if stop in tokens else tokens
            out[i] = tokenizer.decode([t for t in tokens if t < min(tokenizer.special_tokens
                                                                    .values())])
    model.train(was_training)
    return out


def accuracy(model: nn.Module, tokenizer: BPETokenizer, examples: list[Example],
             chat: bool = True, generate_fn: Callable = generate) -> dict[str, float]:
    """The fraction of exactly right greedy answers, per task and over all (``"all"``)."""
    got = answers(model, tokenizer, examples, chat, generate_fn)
    right = [g == ex.answer for g, ex in zip(got, examples, strict=True)]
    result = {task: sum(r for r, ex in zip(right, examples, strict=True) if ex.task == task)
              / max(1, sum(ex.task == task for ex in examples)) for task in TASKS}
    result["all"] = sum(right) / len(right)
    return result


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held by the optimizer's state (AdamW: two moments per trainable parameter)."""
    return sum(t.numel() * t.element_size() for state in optimizer.state.values()
               for t in state.values() if isinstance(t, Tensor))


# ---------------------------------------------------------------- training loops


def train_sft(model: nn.Module, tokenizer: "BPETokenizer", examples: list[Example], steps: int,
              lr: float = 1e-3, batch_size: int = 32, seed: int = 0) -> tuple[list[float],
                                                                                torch.optim.Optimizer]:
    """Supervised fine-tuning on the chat format; only the parameters that require grad
    train. Returns the loss of every step and the optimizer (to measure its state)."""
    encoded = [encode_chat(tokenizer, ex.instruction, ex.answer) for ex in examples]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    history = []
    for step in range(steps):
        for group in optimizer.param_groups:  # warm-up over 10 % of the steps, then cosine
            group["lr"] = lr * min((step + 1) / max(1, steps // 10),
                                   0.55 + 0.45 * math.cos(math.pi * step / steps))
        rows = torch.randint(len(encoded), (batch_size,), generator=gen).tolist()
        batch = collate(tokenizer, [encoded[i] for i in rows])
        logits, _ = model(batch.ids)  # (B, T, V)
        loss = sft_loss(logits, batch.labels, batch.mask)  # the response tokens only
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return history, optimizer


def preference_pairs(examples: list[Example], seed: int) -> list[tuple[str, str, str]]:
    """``(instruction, chosen, rejected)``: the right answer against a plausible wrong one."""
    rng = random.Random(seed)
    return [(ex.instruction, ex.answer, wrong_answer(rng, ex)) for ex in examples]


def pair_batch(tokenizer: "BPETokenizer", pairs: list[tuple[str, str, str]]) -> ChatBatch:
    """One batch of ``2B`` rows: the ``B`` chosen responses, then the ``B`` rejected ones."""
    encoded = [encode_chat(tokenizer, p, c) for p, c, _ in pairs]
    encoded += [encode_chat(tokenizer, p, r) for p, _, r in pairs]
    return collate(tokenizer, encoded)


@torch.no_grad()
def preference_stats(policy: nn.Module, reference: nn.Module, tokenizer: "BPETokenizer",
                     pairs: list[tuple[str, str, str]], beta: float) -> dict[str, float]:
    """DPO's implicit rewards on ``pairs``: the mean chosen and rejected reward, their margin,
    and the preference accuracy (the fraction of pairs whose chosen reward is higher); and
    ``prefers``, the fraction of pairs whose chosen answer the policy itself finds likelier."""
    batch, n = pair_batch(tokenizer, pairs), len(pairs)
    policy_logps, ref_logps = response_logprobs(policy, batch), response_logprobs(reference,
                                                                                  batch)
    _, chosen, rejected = dpo_loss(policy_logps[:n], policy_logps[n:], ref_logps[:n],
                                   ref_logps[n:], beta=beta)
    return {"chosen": chosen.mean().item(), "rejected": rejected.mean().item(),
            "margin": (chosen - rejected).mean().item(),
            "accuracy": (chosen > rejected).float().mean().item(),
            "prefers": (policy_logps[:n] > policy_logps[n:]).float().mean().item()}


def train_dpo(policy: nn.Module, reference: nn.Module, tokenizer: "BPETokenizer",
              pairs: list[tuple[str, str, str]], steps: int, beta: float = 0.1,
              lr: float = 1e-4, batch_size: int = 32, seed: int = 0) -> list[dict[str, float]]:
    """DPO: the policy trains, the reference only scores (frozen, no gradient). Returns per
    step the mean loss, the reward margin and the preference accuracy of the batch."""
    reference.eval().requires_grad_(False)
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    policy.train()
    history = []
    for _ in range(steps):
        rows = torch.randint(len(pairs), (batch_size,), generator=gen).tolist()
        batch = pair_batch(tokenizer, [pairs[i] for i in rows])
        policy_logps = response_logprobs(policy, batch)  # (2B,): chosen, then rejected
        with torch.no_grad():
            ref_logps = response_logprobs(reference, batch)
        losses, chosen, rejected = dpo_loss(
            policy_logps[:batch_size], policy_logps[batch_size:],
            ref_logps[:batch_size], ref_logps[batch_size:], beta=beta)
        loss = losses.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append({"loss": loss.item(), "margin": (chosen - rejected).mean().item(),
                        "accuracy": (chosen > rejected).float().mean().item()})
    return history


# ---------------------------------------------------------------- the base model


BASE_CONFIG = dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64)


def pretraining_text(n_lines: int = 60_000, seed: int = PRETRAIN_SEED) -> str:
    """Plain lines of every task (the held-out test instructions left out)."""
    held_out = {ex.instruction for ex in held_out_set()}
    return "".join(plain_text(ex) for ex in make_examples(n_lines, seed, held_out,
                                                         distinct=False))


def load_base(path: str | Path = CHECKPOINT, model_class: type = MiniGPT,
              config_class: type = GPTConfig) -> tuple[nn.Module, BPETokenizer]:
    """The pretrained base model (built with ``model_class``, e.g. your own MiniGPT) in
    float32, and its tokenizer."""
    ckpt = torch.load(path, weights_only=True)
    tokenizer = tokenizer_from_merges(ckpt["merges"], ckpt["special_tokens"])
    model = model_class(config_class(**ckpt["config"]))
    model.load_state_dict({k: v.float() for k, v in ckpt["state_dict"].items()})
    return model, tokenizer


def pretrain(steps: int = 6000, out: str | Path = CHECKPOINT, seed: int = PRETRAIN_SEED) -> None:
    """Pretrain the base model on the plain format with the week-7 trainer and save it."""
    from solutions.train import TrainConfig, Trainer

    text = pretraining_text(seed=seed)
    tokenizer = make_tokenizer(text)
    ids = torch.tensor(tokenizer.encode(text))
    cut = int(0.95 * len(ids))
    vocab_size = 256 + N_MERGES + len(tokenizer.special_tokens)
    data = Dataset(ids[:cut], ids[cut:], tokenizer, vocab_size)
    config = dict(BASE_CONFIG, vocab_size=vocab_size)
    torch.manual_seed(seed)
    model = MiniGPT(GPTConfig(**config))
    cfg = TrainConfig(batch_size=32, block_size=64, max_iters=steps, lr=3e-3, min_lr=3e-4,
                      warmup_iters=100, weight_decay=0.0, eval_interval=1000, eval_iters=10,
                      device="cpu", seed=seed)
    start = time.time()
    Trainer(model, data, cfg).fit()
    print(f"pretrained in {time.time() - start:.0f} s; plain-format accuracy on the test set:",
          accuracy(model, tokenizer, held_out_set(), chat=False))
    torch.save({"config": config, "merges": [[a, b, i] for (a, b), i in tokenizer.merges.items()],
                "special_tokens": tokenizer.special_tokens, "steps": steps, "seed": seed,
                "state_dict": {k: v.half() for k, v in model.state_dict().items()}}, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Pretrain week 10's base model.")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--out", default=str(CHECKPOINT))
    args = parser.parse_args()
    pretrain(args.steps, args.out)
