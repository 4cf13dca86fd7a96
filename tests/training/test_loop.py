"""The training loop on a tiny random BERT: it learns, its normalisation rule holds, it logs what it says."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from seqtag.config import from_dict
from seqtag.training.loop import train
from tests.tiny import make_tiny_model_dir, sentences, tiny_config


def _run(tmp_path, **overrides):
    cfg = from_dict(tiny_config(tmp_path, **overrides))
    return train(cfg)


def test_tiny_model_learns_the_synthetic_entities(tmp_path):
    run = _run(tmp_path, n_train=64, train={"epochs": 6, "batch_size": 8, "learning_rate": 3e-3})
    metrics = json.loads((run / "metrics.json").read_text())
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in history if r["type"] == "step"]
    assert losses[-1] < 0.3 * losses[0]
    assert metrics["dev"]["f1"] >= 0.9 and metrics["test"]["f1"] >= 0.9  # measured: 1.0 and 1.0
    epochs = [r for r in history if r["type"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4, 5, 6]
    info = json.loads((run / "run_info.json").read_text())
    assert info["best_dev_f1"] == max(r["dev"]["f1"] for r in epochs)


def test_accumulation_equals_the_large_batch(tmp_path, monkeypatch):
    """An epoch of 3 steps of 2 x 4 sentences with accumulation equals one of 3 steps of 8 sentences: the loss is
    normalised by the labelled tokens of the whole window, not averaged per micro-batch, and the epoch's last
    window is one optimizer step too (its micro-batches are fetched before the first one runs, when accelerate
    already knows the data loader is at its end and synchronises every one of them)."""
    real_step, counted = torch.optim.AdamW.step, []

    def step(self, *args, **kwargs):  # the weight updates themselves, whatever wraps the optimizer
        counted.append(1)
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    weights, steps = {}, {}
    for name, batch, accum in (("big", 8, 1), ("accum", 4, 2)):
        d = tmp_path / name
        make_tiny_model_dir(d / "model", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        counted.clear()
        run = _run(d, n_dev=0, n_test=0, train={"batch_size": batch, "grad_accum": accum, "epochs": 1,
                                                "group_by_length": False, "learning_rate": 1e-2})
        weights[name], steps[name] = load_file(str(run / "model.safetensors")), len(counted)
    assert steps == {"big": 3, "accum": 3}  # 24 sentences: three updates of the weights either way
    base = load_file(str(tmp_path / "big" / "model" / "model.safetensors"))
    moved = 0
    for key, w in weights["big"].items():
        torch.testing.assert_close(weights["accum"][key], w, rtol=1e-5, atol=1e-6)
        stem = key.removeprefix("bert.")
        if stem in base:
            moved += int(not torch.equal(base[stem], w))
    assert moved > 10  # the steps really changed the encoder


def test_dynamics_are_logged_for_weighted_losses(tmp_path):
    run = _run(tmp_path, loss={"name": "lstar", "k": 1.0}, train={"dynamics": True, "epochs": 1})
    steps = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()
             if '"step"' in line and '"type": "step"' in line]
    rec = steps[0]
    for key in ("mean_logit", "weight_mean_o", "weight_mean_entity", "weight_below_0.01_o",
                "weight_below_0.01_entity"):
        assert key in rec
    assert 0 < rec["weight_mean_entity"] < 1 and 0 <= rec["weight_below_0.01_entity"] <= 1


def test_trains_from_a_saved_hub_dataset(tmp_path):
    import datasets

    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    feats = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                               "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    splits = {}
    for split, n, seed in (("train", 24, 1), ("validation", 7, 2)):
        sents = sentences(n, seed)
        splits[split] = datasets.Dataset.from_dict(
            {"tokens": [[w for w, _ in s] for s in sents], "ner_tags": [[names.index(t) for _, t in s] for s in sents]},
            features=feats)
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "hubdata"))
    run = _run(tmp_path, n_train=0, n_dev=0, n_test=0,
               data={"format": "hub", "hub_dataset": str(tmp_path / "hubdata"), "train": "train", "dev": "validation",
                     "test": None, "scheme": "IOB2", "max_length": 32, "stride": 8,
                     "cache_dir": str(tmp_path / "cache")})
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"dev"} and metrics["dev"]["per_type"]["PER"]["support"] == 7
    cfg = json.loads((run / "config.json").read_text())
    assert sorted(cfg["label2id"]) == sorted(names)


def test_bf16_autocast_trains_on_cpu(tmp_path, monkeypatch):
    """train.mixed_precision=bf16 on a CPU: every training forward pass runs under bf16 autocast (the encoder's
    linear layers compute in bf16; accelerate hands the logits back in fp32), the losses stay finite, and the
    weights move and are saved in fp32."""
    import seqtag.tasks.ner as ner

    plain, seen = ner.loss_step, []

    def recording(model, batch, loss):
        inner = []
        linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
        hook = linear.register_forward_hook(lambda module, args, output: inner.append(output.dtype))
        try:
            out = plain(model, batch, loss)
        finally:
            hook.remove()
        seen.append((inner[0], out[0].dtype, float(out[0])))
        return out

    monkeypatch.setattr(ner, "loss_step", recording)
    run = _run(tmp_path, train={"mixed_precision": "bf16", "epochs": 1})
    info = json.loads((run / "run_info.json").read_text())
    assert info["mixed_precision"] == "bf16" and info["status"] == "finished"
    assert len(seen) == info["global_steps"] > 0  # one micro-batch a step (grad_accum 1)
    assert {inner for inner, _, _ in seen} == {torch.bfloat16}  # autocast ran the encoder in bf16
    assert {loss for _, loss, _ in seen} == {torch.float32}  # the loss upcasts before log_softmax
    assert all(math.isfinite(value) for _, _, value in seen)
    weights, base = load_file(str(run / "model.safetensors")), load_file(str(tmp_path / "model" / "model.safetensors"))
    assert {t.dtype for t in weights.values()} == {torch.float32}
    assert sum(not torch.equal(base[k.removeprefix("bert.")], w) for k, w in weights.items()
               if k.removeprefix("bert.") in base) > 10
    assert (run / "checkpoints" / "last").is_dir()  # kept by default: the run can be extended


def test_finished_run_can_drop_its_checkpoint(tmp_path):
    run = _run(tmp_path, train={"epochs": 1, "keep_checkpoint": False})
    assert not (run / "checkpoints").exists() and (run / "model.safetensors").is_file()
    w = load_file(str(run / "model.safetensors"))
    assert all(t.dtype == torch.float32 for t in w.values())  # autocast: weights stay fp32


def _scripted_dev(monkeypatch, dev_f1: list[float]) -> list[tuple[str, float]]:
    """Make the dev F1 of the end-of-epoch evaluations follow ``dev_f1``; log (split, weight checksum) of every
    evaluation so a test can tell which weights each one saw."""
    import seqtag.training.loop as train_module

    calls: list[tuple[str, float]] = []
    real_setup = train_module.setup_task

    def setup(cfg, tokenizer, accelerator):
        task = real_setup(cfg, tokenizer, accelerator)
        real_evaluate = task.evaluate

        def evaluate(model, split, acc, batch_size):
            metrics = real_evaluate(model, split, acc, batch_size)
            checksum = sum(float(p.detach().double().sum()) for p in model.parameters())
            calls.append((split, checksum))
            if split == "dev" and len([c for c in calls if c[0] == "dev"]) <= len(dev_f1):
                metrics = {**metrics, "f1": dev_f1[len([c for c in calls if c[0] == "dev"]) - 1]}
            return metrics

        task.evaluate = evaluate
        return task

    monkeypatch.setattr(train_module, "setup_task", setup)
    return calls


def test_final_evaluation_uses_the_best_epochs_weights(tmp_path, monkeypatch):
    calls = _scripted_dev(monkeypatch, [0.5, 0.9, 0.3])  # epoch 2 is the best
    run = _run(tmp_path, train={"epochs": 3, "learning_rate": 3e-3})
    dev_epochs = [c for c in calls if c[0] == "dev"]
    assert len(dev_epochs) == 4  # three epochs, then dev again with the reloaded epoch-2 weights
    assert dev_epochs[3][1] == dev_epochs[1][1] != dev_epochs[2][1]
    assert calls[-1] == ("test", dev_epochs[1][1])
    info = json.loads((run / "run_info.json").read_text())
    assert info["best_epoch"] == 2


def test_when_the_last_epoch_is_best_dev_is_not_evaluated_again(tmp_path, monkeypatch):
    calls = _scripted_dev(monkeypatch, [0.5, 0.6])
    run = _run(tmp_path, train={"epochs": 2})
    assert [c[0] for c in calls] == ["dev", "dev", "test"]
    assert calls[2][1] == calls[1][1]  # test saw the last (best) epoch's weights
    metrics = json.loads((run / "metrics.json").read_text())
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert metrics["dev"] == [r for r in history if r["type"] == "epoch"][-1]["dev"]


def test_eval_every_epoch_false_evaluates_dev_once_and_keeps_the_last_weights(tmp_path, monkeypatch):
    """Four short epochs: dev only after the last (its F1 scripted low, and still the result), test on the same
    weights, every epoch in history.jsonl; with early stopping the config is refused."""
    calls = _scripted_dev(monkeypatch, [0.1])
    run = _run(tmp_path, train={"epochs": 4, "eval_every_epoch": False})
    assert [c[0] for c in calls] == ["dev", "test"] and calls[0][1] == calls[1][1]
    info = json.loads((run / "run_info.json").read_text())
    assert info["best_epoch"] == 4
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    epochs = [r for r in history if r["type"] == "epoch"]
    assert [bool(r["dev"]) for r in epochs] == [False, False, False, True] and epochs[-1]["dev"]["f1"] == 0.1
    from seqtag.errors import ConfigError

    with pytest.raises(ConfigError, match="early_stopping_patience needs dev scores after every epoch"):
        from_dict(tiny_config(tmp_path, train={"eval_every_epoch": False, "early_stopping_patience": 2}))


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_the_training_loader_pads_and_pins_as_the_device_wants(tmp_path, monkeypatch, device):
    """On a CPU batches are as wide as their longest example and not pinned (as always); the loader a GPU gets
    (its settings forced here on the CPU) pads to multiples of 8, within data.max_length, and pins."""
    import seqtag.tasks.ner as ner
    import seqtag.training.loop as loop
    from seqtag.data.batching import loader_settings

    monkeypatch.setattr(loop, "loader_settings", lambda device_type: loader_settings(device))
    real_start, real_step, runs, widths = loop.start, ner.loss_step, [], []

    def start(cfg):
        runs.append(real_start(cfg))
        return runs[-1]

    def loss_step(model, batch, loss):
        widths.append((batch["input_ids"].shape[1], int(batch["attention_mask"].sum(1).max())))
        return real_step(model, batch, loss)

    monkeypatch.setattr(loop, "start", start)
    monkeypatch.setattr(ner, "loss_step", loss_step)
    _run(tmp_path, n_dev=0, n_test=0, train={"epochs": 1, "batch_size": 4})
    assert len(widths) == 6 and all(longest <= 32 for _, longest in widths)
    if device == "cpu":
        assert all(w == longest for w, longest in widths) and any(w % 8 for w, _ in widths)
        assert runs[0].train_loader.pin_memory is False
    else:
        assert all(w % 8 == 0 and longest <= w < longest + 8 for w, longest in widths)
        assert runs[0].train_loader.pin_memory is True


def test_the_precision_accelerate_launch_asks_for_is_followed_or_refused(tmp_path, monkeypatch):
    """``accelerate launch --mixed_precision bf16`` sets ACCELERATE_MIXED_PRECISION=bf16: ``auto`` trains in bf16, a
    config saying ``no`` is refused before the run directory is made."""
    from seqtag.errors import ConfigError

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    with pytest.raises(ConfigError, match="train.mixed_precision is no in the config but accelerate launch asked for "
                                          "--mixed_precision bf16"):
        _run(tmp_path / "no", train={"mixed_precision": "no", "epochs": 1})
    assert not (tmp_path / "no" / "run").exists()
    run = _run(tmp_path / "auto", n_dev=0, n_test=0, train={"mixed_precision": "auto", "max_steps": 1})
    assert json.loads((run / "run_info.json").read_text())["mixed_precision"] == "bf16"
