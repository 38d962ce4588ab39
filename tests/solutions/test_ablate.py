"""The experiments runner (``solutions.ablate``): its controls, not its results. Every variant
of a seed sees the same batches in the same order, the MLPs have equal parameters within 1 %,
every variant starts from the same loss up to initialisation noise, learned positions refuse
inputs past their table, and the command writes its table, plot and JSON."""

import json
import math

import pytest
import torch

from solutions import ablate
from solutions.data import load_dataset, load_text
from solutions.model import MiniGPT

STEPS, SEEDS = 4, 2


@pytest.fixture(scope="module")
def data():
    return load_dataset("char", load_text()[:200_000])


@pytest.fixture(scope="module")
def activations(data):
    with torch.random.fork_rng():
        return ablate.run_activations(quick=True, seeds=SEEDS, steps=STEPS, data=data)


@pytest.fixture(scope="module")
def positions(data):
    with torch.random.fork_rng():
        return ablate.run_positions(quick=True, seeds=SEEDS, steps=STEPS, data=data,
                                    lengths=(64, 128))


def _digests(results) -> dict[str, list[str]]:
    return {name: [r["batch_digest"] for r in v["runs"]] for name, v in results["variants"].items()}


@pytest.mark.parametrize("experiment", ["activations", "positions"])
def test_every_variant_sees_the_same_batches(experiment, request):
    results = request.getfixturevalue(experiment)
    digests = _digests(results)
    assert set(digests) == set(ablate.ACTIVATIONS if experiment == "activations"
                               else ablate.POSITIONS)
    first = next(iter(digests.values()))
    assert all(d == first for d in digests.values()), digests  # per seed, across variants
    assert len(set(first)) == SEEDS  # and the seeds differ from each other
    steps = {tuple(h["step"] for h in r["history"]) for v in results["variants"].values()
             for r in v["runs"]}
    assert len(steps) == 1 and max(next(iter(steps))) == STEPS  # the same steps and evaluations
    lrs = {tuple(h["lr"] for h in r["history"]) for v in results["variants"].values()
           for r in v["runs"]}
    assert len(lrs) == 1  # the same schedule


def test_recording_trainer_tells_different_batches_apart(data):
    setup = ablate.QUICK
    cfg = ablate.model_config(setup, data.vocab_size)
    digests = []
    for seed in (0, 0, 1):
        trainer = ablate.RecordingTrainer(MiniGPT(cfg), data, ablate.train_config(setup, seed))
        trainer.fit(max_iters=2, progress=False)
        digests.append(trainer.batch_digest)
    assert digests[0] == digests[1] != digests[2]


@pytest.mark.parametrize("env, quick", [
    ({}, False), ({"COURSE_QUICK": "1"}, True), ({"COURSE_QUICK": "0"}, False),
    ({"NBGRADER_EXECUTION": "autograde"}, True), ({"NBGRADER_EXECUTION": "validate"}, True),
    ({"NBGRADER_EXECUTION": "feedback"}, False)])
def test_quick_from_environment(env, quick, monkeypatch):
    assert ablate.quick_from_environment(env) is quick
    for name in ("COURSE_QUICK", "NBGRADER_EXECUTION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(ablate.os, "environ", {**ablate.os.environ, **env})
    assert ablate.quick_from_environment() is quick  # os.environ by default


@pytest.mark.parametrize("experiment", ["activations", "positions"])
def test_runners_default_to_one_thread_and_the_environment(experiment, monkeypatch):
    """What the notebooks rely on when they call the runner bare: quick as the environment
    says, one thread while training, torch's own count again afterwards (also on error)."""
    seen = []

    def fake(quick, *args):
        seen.append((quick, torch.get_num_threads()))
        raise RuntimeError("stop")

    monkeypatch.setattr(ablate, f"_{experiment}", fake)
    run = getattr(ablate, f"run_{experiment}")
    before = torch.get_num_threads()
    for value in ("1", "0"):
        monkeypatch.setenv("COURSE_QUICK", value)
        monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
        with pytest.raises(RuntimeError, match="stop"):
            run()
        assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        run(quick=True, threads=None)  # an explicit choice wins; None leaves the threads alone
    assert seen == [(True, 1), (False, 1), (True, before)]


def test_cpu_threads_sets_and_restores():
    before = torch.get_num_threads()
    with ablate.cpu_threads(1) as n:
        assert n == torch.get_num_threads() == 1
    with ablate.cpu_threads(None) as n:
        assert n == before
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("setup", [ablate.QUICK, ablate.FULL])
def test_mlps_have_equal_parameters_within_one_percent(setup, activations):
    counts = {mlp: ablate.count_parameters(ablate.model_config(setup, 65, mlp=mlp))
              for mlp in ablate.ACTIVATIONS}
    assert counts["relu"] == counts["gelu"] == counts["silu"]
    assert abs(counts["swiglu"] / counts["relu"] - 1) < 0.01
    built = {name: v["parameters"] for name, v in activations["variants"].items()}
    assert abs(max(built.values()) / min(built.values()) - 1) < 0.01
    for name, v in activations["variants"].items():  # the count is the built model's
        model = MiniGPT(ablate.GPTConfig(**v["config"]))
        assert v["parameters"] == sum(p.numel() for p in model.parameters()), name
        assert v["config"]["mlp"] == name


@pytest.mark.parametrize("experiment", ["activations", "positions"])
def test_same_initial_loss_up_to_initialisation_noise(experiment, request):
    """At step 0 every variant predicts nearly uniformly: loss ~ log(vocabulary), and the
    variants of one seed agree to a few hundredths."""
    results = request.getfixturevalue(experiment)
    for seed in range(SEEDS):
        initial = [v["runs"][seed]["initial_val"] for v in results["variants"].values()]
        assert max(initial) - min(initial) < 0.05, initial
        assert all(abs(x - math.log(65)) < 0.1 for x in initial), initial


def test_learned_positions_refuse_long_inputs_and_the_others_run(positions):
    lengths = positions["variants"]["learned"]["lengths"]
    assert "mean" in lengths["64"]
    assert "learned position table" in lengths["128"]["refused"]
    assert "128" not in positions["variants"]["learned"]["per_position"]
    for pos in ("rope", "alibi", "none"):
        v = positions["variants"][pos]
        assert all(math.isfinite(v["lengths"][L]["mean"]) for L in ("64", "128"))
        assert len(v["per_position"]["128"]) == 128
        assert v["parameters"] == positions["variants"]["rope"]["parameters"]
    # the table of positions costs learned positions max_seq_len * dim parameters more
    extra = positions["variants"]["learned"]["parameters"] - positions["variants"]["rope"][
        "parameters"]
    assert extra == ablate.TRAIN_LENGTH * ablate.QUICK.dim


def test_summaries_are_the_mean_and_spread_of_the_seeds(activations):
    v = activations["variants"]["relu"]
    finals = [r["final_val"] for r in v["runs"]]
    assert v["final_val"]["mean"] == pytest.approx(sum(finals) / len(finals), abs=1e-4)
    assert v["final_val"]["min"] <= v["final_val"]["mean"] <= v["final_val"]["max"]
    assert v["curve"]["mean"][-1] == pytest.approx(v["final_val"]["mean"], abs=1e-4)


@pytest.mark.parametrize("experiment", ["activations", "positions"])
def test_command_writes_table_plot_and_json(experiment, tmp_path, capsys):
    assert ablate.main([experiment, "--quick", "--steps", "2", "--seeds", "1",
                        "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    names = ablate.ACTIVATIONS if experiment == "activations" else ablate.POSITIONS
    assert table.startswith("| ") and all(f"| {n} |" in table for n in names)
    results = json.loads((tmp_path / f"{experiment}.json").read_text())
    assert results["command"] == (f"python -m solutions.ablate {experiment} --quick --steps 2 "
                                  f"--seeds 1 --out {tmp_path}")
    assert set(results["variants"]) == set(names)
    assert ablate.load_results(experiment, tmp_path) == results
    assert (tmp_path / f"{experiment}.png").read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in (tmp_path / f"{experiment}.svg").read_text()


@pytest.mark.parametrize("experiment", ["activations", "positions"])
def test_committed_full_runs_kept_the_controls(experiment):
    """The runs the lessons quote (site/assets/ablations): made by the command they name, at
    the full size, and every control held there too."""
    results = ablate.load_results(experiment)
    assert results["command"].startswith(f"python -m solutions.ablate {experiment}")
    assert "--quick" not in results["command"]
    assert results["settings"]["steps"] >= ablate.FULL.steps
    assert results["settings"]["seeds"] >= 3
    digests = _digests(results)
    assert len({tuple(d) for d in digests.values()}) == 1
    assert len(set(next(iter(digests.values())))) == results["settings"]["seeds"]
    for seed in range(results["settings"]["seeds"]):
        initial = [v["runs"][seed]["initial_val"] for v in results["variants"].values()]
        assert max(initial) - min(initial) < 0.05, initial
    if experiment == "activations":
        counts = [v["parameters"] for v in results["variants"].values()]
        assert max(counts) / min(counts) - 1 < 0.01
    else:
        learned = results["variants"]["learned"]["lengths"]
        assert "mean" in learned["64"] and all("refused" in learned[L]
                                               for L in ("128", "256", "512"))
        assert results["settings"]["eval_lengths"] == list(ablate.EVAL_LENGTHS)
