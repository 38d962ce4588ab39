"""Week 10 data and loops: the instruction set, the chat batches, the shipped base model."""

import copy
import random

import pytest
import torch
from torch import nn

from solutions.instruct import (
    BASE_CONFIG,
    CHECKPOINT,
    END,
    LETTERS,
    N_MERGES,
    TASKS,
    TrainableTokens,
    accuracy,
    chat_prompt,
    collate,
    encode_chat,
    held_out_set,
    load_base,
    make_examples,
    make_tokenizer,
    pair_batch,
    preference_pairs,
    preference_stats,
    pretrain,
    pretraining_text,
    train_dpo,
    train_sft,
    wrong_answer,
)


@pytest.fixture(scope="module")
def base():
    return load_base()


def test_the_checkpoint_is_the_scripts(base):
    """The shipped weights come with the tokenizer that `python -m solutions.instruct` trains
    (deterministic) and the configuration it uses."""
    ckpt = torch.load(CHECKPOINT, weights_only=True)
    tokenizer = make_tokenizer(pretraining_text())
    assert ckpt["merges"] == [[a, b, i] for (a, b), i in tokenizer.merges.items()]
    assert ckpt["special_tokens"] == tokenizer.special_tokens
    vocab_size = 256 + N_MERGES + len(tokenizer.special_tokens)
    assert ckpt["config"] == dict(BASE_CONFIG, vocab_size=vocab_size)
    assert all(v.dtype == torch.float16 for v in ckpt["state_dict"].values())


def test_the_script_pretrains_and_saves_a_loadable_base(tmp_path, capsys):
    out = tmp_path / "base.pt"
    pretrain(steps=2, out=out)
    model, tokenizer = load_base(out)
    assert "plain-format accuracy" in capsys.readouterr().out
    assert model.config.vocab_size == 256 + N_MERGES + len(tokenizer.special_tokens)


def test_merges_are_the_task_names_and_words_stay_single_letters(base):
    _, tokenizer = base
    pieces = [tokenizer.vocab[i].decode() for i in range(256, 256 + N_MERGES)]
    assert all(any(p in task for task in TASKS) for p in pieces)
    assert {"add", "reverse", "upper"} <= set(pieces)
    word = "".join(random.Random(0).choice(LETTERS) for _ in range(40))
    assert tokenizer.encode(f"reverse:{word}")[2:] == list(word.encode())
    assert tokenizer.encode("add:47+5") == tokenizer.encode("add") + list(b":47+5")
    for special, i in tokenizer.special_tokens.items():
        assert tokenizer.encode(f"x{special}y") == [ord("x"), i, ord("y")]


def test_base_model_can_do_the_tasks_but_not_in_the_chat_format(base):
    model, tokenizer = base
    test = held_out_set()
    assert accuracy(model, tokenizer, test, chat=False)["all"] >= 0.9
    assert accuracy(model, tokenizer, test, chat=True)["all"] <= 0.05


def test_the_test_set_is_held_out_everywhere():
    test = {ex.instruction for ex in held_out_set()}
    assert len(test) == 150
    lines = {line.split("=")[0] for line in pretraining_text(5000).splitlines()}
    assert not test & lines
    sft = make_examples(600, seed=1, exclude=test)
    assert not test & {ex.instruction for ex in sft} and len({ex.instruction for ex in sft}) == 600
    assert [ex.task for ex in sft[:6]] == [*TASKS, *TASKS]


def test_wrong_answers_are_wrong_and_plausible():
    rng = random.Random(0)
    for ex in make_examples(300, seed=5):
        wrong = wrong_answer(rng, ex)
        assert wrong != ex.answer
        if ex.task == "add":
            assert abs(int(wrong) - int(ex.answer)) in (1, 10)
        else:
            assert sorted(wrong.lower()) == sorted(ex.answer.lower())


def test_collate_shifts_once_and_masks_the_response(base):
    _, tokenizer = base
    examples = held_out_set()[:6]
    encoded = [encode_chat(tokenizer, ex.instruction, ex.answer) for ex in examples]
    batch = collate(tokenizer, encoded)
    for row, (ex, (tokens, n_prompt)) in enumerate(zip(examples, encoded, strict=True)):
        n = len(tokens) - 1
        assert batch.ids[row, :n].tolist() == tokens[:-1]
        assert batch.labels[row, :n].tolist() == tokens[1:]
        assert tokenizer.decode(batch.labels[row][batch.mask[row]].tolist()) == ex.answer + END
        assert tokens[:n_prompt] == tokenizer.encode(chat_prompt(ex.instruction))
        assert not batch.mask[row, n:].any()


def test_answers_are_cut_at_the_end_token(base):
    """With a generate that writes the right answer and then junk, accuracy is 1."""
    model, tokenizer = base
    examples = held_out_set()[:12]
    truth = {tuple(tokenizer.encode(chat_prompt(ex.instruction))): ex.answer for ex in examples}
    end = tokenizer.special_tokens[END]

    def oracle(model, idx, max_new_tokens, temperature):
        rows = []
        for prompt in idx.tolist():
            new = tokenizer.encode(truth[tuple(prompt)]) + [end] + [ord("z")] * max_new_tokens
            rows.append(prompt + new[:max_new_tokens])
        return torch.tensor(rows)

    assert accuracy(model, tokenizer, examples, generate_fn=oracle)["all"] == 1.0


def test_short_sft_and_dpo_runs_move_the_right_way(base):
    model, tokenizer = base
    torch.manual_seed(0)
    sft = copy.deepcopy(model)
    history, optimizer = train_sft(sft, tokenizer, make_examples(64, seed=1), steps=20, lr=3e-3,
                                   batch_size=16)
    assert sum(history[-5:]) < sum(history[:5]) / 2
    pairs = preference_pairs(make_examples(64, seed=2), seed=3)
    reference, policy = copy.deepcopy(sft).eval(), copy.deepcopy(sft)
    frozen = copy.deepcopy(reference.state_dict())
    assert preference_stats(policy, reference, tokenizer, pairs, 0.1)["margin"] == 0
    train_dpo(policy, reference, tokenizer, pairs, steps=10, beta=0.1, lr=1e-4, batch_size=16)
    assert preference_stats(policy, reference, tokenizer, pairs, 0.1)["margin"] > 0
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in frozen.items())
    assert pair_batch(tokenizer, pairs[:3]).ids.shape[0] == 6


def test_trainable_tokens_train_only_their_rows_and_merge():
    torch.manual_seed(0)
    table = TrainableTokens(nn.Embedding(10, 4), [3, 7])
    assert [n for n, p in table.named_parameters() if p.requires_grad] == ["delta"]
    idx = torch.tensor([[3, 1, 7, 7]])
    table(idx).sum().backward()
    assert table.delta.grad.tolist() == [[1.0] * 4, [2.0] * 4]
    with torch.no_grad():
        table.delta.normal_()
    merged = table.merge()
    assert torch.equal(merged(torch.arange(10)), table(torch.arange(10)))
    changed = (merged.weight != table.base.weight).any(-1)
    assert changed.nonzero().flatten().tolist() == [3, 7]
