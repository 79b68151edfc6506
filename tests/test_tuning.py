"""tfbin.tuning: search spaces, keras-tuner tuners for tf_keras models, distributed mode, CLI."""
import inspect
import itertools
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin import tuning
from tfbin import regimen
from tfbin.batchnorm import batch_norms


def _data(n=128, seed=0):
    """Two classes a small net learns in an epoch: brighter top half or brighter bottom half."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 28, 28, 1)).astype("float32")
    y = (x[:, :14].mean((1, 2, 3)) > x[:, 14:].mean((1, 2, 3))).astype("int64")
    split = n * 3 // 4
    return (
        tf.data.Dataset.from_tensor_slices((x[:split], y[:split])).batch(32),
        tf.data.Dataset.from_tensor_slices((x[split:], y[split:])).batch(64),
    )


@pytest.mark.margin(exact="each trial's sharpness against EDE's formula at its values; the best recipe's params against the best trial's values")
def test_space_values_reach_the_sharpness_weights_of_the_trained_model(tmp_path):
    space = tuning.SearchSpace("irnet", t_min=(0.2, 0.5), t_max=(2.0, 4.0), update_freq="epoch")
    tuner = tuning.RandomSearch("lenet_bnn", space, max_trials=2, max_epochs=2, directory=str(tmp_path), seed=1)
    tuner.search(*_data())
    for trial in tuner.oracle.trials.values():
        values = trial.hyperparameters.values
        model = tuner.load_model(trial)
        # IR-Net's EDE, set at epoch starts: epoch 1 (the last of 2) used t_min·(t_max/t_min)^(1/2).
        expected = values["t_min"] * (values["t_max"] / values["t_min"]) ** 0.5
        np.testing.assert_allclose(tfbin.sharpness.get(model, "t"), expected, rtol=1e-6)
        np.testing.assert_allclose(tfbin.sharpness.get(model, "k"), max(1 / expected, 1), rtol=1e-6)
    best = tuner.best_trial().hyperparameters.values
    recipe = tuner.best_recipe(epochs=6)
    assert (recipe.params["t_max"], recipe.params["epochs"]) == (best["t_max"], 6)
    assert recipe.params["training"] == {"lr": best["lr"], "lr_decay": best["lr_decay"]}
    assert recipe.schedules["t"](6) == pytest.approx(best["t_max"])


@pytest.mark.parametrize("tuner_class", [tuning.RandomSearch, tuning.BayesianOptimization, tuning.Hyperband])
def test_the_first_trial_is_the_recipe_as_shipped(tuner_class, tmp_path):
    tuner = tuner_class("lenet_bnn", "self_binarizing", seed=3, directory=str(tmp_path))
    first = tuner.oracle.create_trial("tuner0").hyperparameters.values
    signature = inspect.signature(tfbin.recipes.self_binarizing).parameters
    expected = {name: signature[name].default for name in ("v_end", "v_kernel_end", "sharpen", "warmup", "finish")}
    assert {k: first[k] for k in expected} == expected and first["lr"] == 1e-3
    second = tuner.oracle.create_trial("tuner1").hyperparameters.values
    assert {k: second[k] for k in expected} != expected


@pytest.mark.parametrize("recipe", [name for name in tfbin.recipes.available() if tfbin.recipes.search_ranges(name)])
def test_every_corner_of_a_recipes_search_range_builds(recipe):
    """A search never proposes a point the recipe's factory rejects (e.g. warmup + sharpen > 1)."""
    ranges = tfbin.recipes.search_ranges(recipe)
    for corner in itertools.product(*[
        (spec.low, spec.high) if isinstance(spec, tfbin.recipes.Range) else spec.values for spec, _ in ranges.values()
    ]):
        built = tfbin.recipes.get(recipe, epochs=3, **dict(zip(ranges, corner)))
        assert all(built.params[k] == v for k, v in zip(ranges, corner))


def _objective_search(directory, seed=0):
    """One 1-epoch trial of lenet_bnn + self_binarizing with v kept small, on 256 images of a
    10-class task (seed: data, initial weights, the trial's values): (tuner, trial, validation set)."""
    tf.keras.utils.set_random_seed(seed)
    # v stays small and nothing finishes on the hard forward: tanh(v·x) is far from sign(x).
    space = tuning.SearchSpace("self_binarizing", v_end=(0.6, 0.7), v_kernel_end=0.65, finish=0.0, lr=1e-2)
    tuner = tuning.RandomSearch("lenet_bnn", space, max_trials=1, max_epochs=1, directory=directory, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (768, 28, 28, 1)).astype("float32")
    y = x[:, :, :20, 0].reshape(768, 28, 10, 2).mean((1, 3)).argmax(1)  # 10 classes: the brightest band
    train = tf.data.Dataset.from_tensor_slices((x[:256], y[:256])).batch(32)
    validation = tf.data.Dataset.from_tensor_slices((x[256:], y[256:])).batch(128)
    tuner.search(train, validation)
    return tuner, tuner.best_trial(), validation


def objective_figures(seed=0):
    """The trained figure `test_the_objective_is_the_hard_accuracy` bounds: how far the trial's
    soft accuracy lies from its score, the hard one (> 0, or the test could not tell them apart)."""
    with tempfile.TemporaryDirectory() as directory:
        _, trial, _ = _objective_search(directory, seed)
        return {"tuning_objective_soft_hard_gap": abs(trial.metrics.get_last_value("val_soft_accuracy") - trial.score)}


@pytest.mark.margin("tuning_objective_soft_hard_gap")
def test_the_objective_is_the_hard_accuracy(tmp_path, monkeypatch):
    # The BN statistics as trained, read when the tuner recalibrates (the saved model has the
    # statistics it kept, so only this shows which).
    trained = []

    def recalibrate(model, *args, **kwargs):
        trained[:] = [(bn.moving_mean.numpy(), bn.moving_variance.numpy()) for bn in batch_norms(model)]
        return tfbin.recalibrate(model, *args, **kwargs)

    monkeypatch.setattr(regimen, "recalibrate", recalibrate)
    tuner, trial, validation = _objective_search(str(tmp_path), seed=0)
    model = tuner.load_model(trial)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    norms = batch_norms(model)
    assert len(trained) == len(norms) == 3
    with tfbin.hard(model):
        hard = model.evaluate(validation, verbose=0, return_dict=True)["accuracy"]
    assert trial.score == pytest.approx(hard, abs=1e-6)
    # The deployed form is scored after tfbin train's BN recalibration check (on training data):
    # the saved statistics are the trained ones exactly when the trial says it did not recalibrate.
    kept = all(np.array_equal(m, bn.moving_mean.numpy()) and np.array_equal(v, bn.moving_variance.numpy())
               for (m, v), bn in zip(trained, norms))
    assert trial.metrics.get_last_value("bn_recalibrated") == float(not kept)
    # The soft accuracy is the trained model's (its training statistics), either way.
    for (mean, variance), bn in zip(trained, norms):
        bn.moving_mean.assign(mean)
        bn.moving_variance.assign(variance)
    soft = model.evaluate(validation, verbose=0, return_dict=True)["accuracy"]
    assert trial.metrics.get_last_value("val_soft_accuracy") == pytest.approx(soft, abs=1e-6)
    # Bound: soft and hard accuracies differ (tuning_objective_soft_hard_gap > 0), so that the
    # score's check above tells them apart; the measured spread is in bench/results/test_margins.json.
    with tfbin.hard(model):
        assert soft != model.evaluate(validation, verbose=0, return_dict=True)["accuracy"]


class _Steps(tf.keras.callbacks.Callback):
    """Per fit: training batches per epoch, and EDE's t at the last epoch."""

    def __init__(self):
        super().__init__()
        self.runs = []

    def on_train_begin(self, logs=None):
        self.runs.append({"batches": [], "t": None})

    def on_epoch_begin(self, epoch, logs=None):
        self.runs[-1]["batches"].append(0)
        self.runs[-1]["t"] = tfbin.sharpness.get(self.model, "t")

    def on_train_batch_end(self, batch, logs=None):
        self.runs[-1]["batches"][-1] += 1


@pytest.mark.margin(exact="batches per epoch and trial counts, t against EDE's formula, the best trial is the highest-scored full-data one, printed rows")
def test_hyperband_lower_rungs_train_whole_schedules_on_a_fraction_of_the_data(tmp_path):
    steps, printed = _Steps(), []
    train, validation = _data(n=256)  # 6 training batches
    tuner = tuning.Hyperband("lenet_bnn", tuning.SearchSpace("irnet", update_freq="epoch"), max_epochs=2, budget=3, factor=3, directory=str(tmp_path), seed=0,
                             callbacks=[steps], print_fn=printed.append)
    tuner.search(train, validation)
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    assert len(trials) == len(steps.runs) == 6  # Hyperband(3, 3): 3 trials on 1/3, 1 + 2 on all of it
    for trial, run in zip(trials, steps.runs):
        fraction = trial.hyperparameters.values["tuner/epochs"] / 3
        assert run["batches"] == [math.ceil(fraction * 6)] * 2  # every trial trains max_epochs epochs
        values = trial.hyperparameters.values
        np.testing.assert_allclose(run["t"], values["t_min"] * (values["t_max"] / values["t_min"]) ** 0.5, rtol=1e-6)
    full = [t for t in trials if t.hyperparameters.values["tuner/epochs"] == 3]
    assert tuner.best_trial() is max(full, key=lambda t: t.score)
    assert len(printed) == 1 + 6 and printed[0].split()[:4] == ["trial", "t_min", "t_max", "update_freq"]
    assert [line.split()[0] for line in printed[1:]] == [t.trial_id for t in trials]


class _Rates(tf.keras.callbacks.Callback):
    """Adam's learning rate at every training batch, per fit."""

    def __init__(self):
        super().__init__()
        self.runs = []

    def on_train_begin(self, logs=None):
        self.runs.append([])

    def on_train_batch_end(self, batch, logs=None):
        self.runs[-1].append(float(self.model.optimizer.learning_rate))


@pytest.mark.margin(exact="Adam's rate at every step against the cosine formula over each trial's own steps; counts")
def test_a_cosine_trial_decays_adams_rate_to_zero_over_its_own_steps(tmp_path):
    rates = _Rates()
    train, validation = _data(n=256)  # 6 training batches
    space = tuning.SearchSpace("irnet", lr=1e-2, lr_decay="cosine")
    tuner = tuning.Hyperband("lenet_bnn", space, max_epochs=2, budget=3, factor=3, directory=str(tmp_path), seed=0, callbacks=[rates])
    tuner.search(train, validation)
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    assert len(rates.runs) == len(trials) == 6
    for trial, run in zip(trials, rates.runs):
        total = 2 * math.ceil(trial.hyperparameters.values["tuner/epochs"] / 3 * 6)  # a lower rung's own steps
        np.testing.assert_allclose(run, [1e-2 * 0.5 * (1 + math.cos(math.pi * i / total)) for i in range(total)], rtol=1e-5)
    assert tuner.best_recipe().params["training"] == {"lr": 1e-2, "lr_decay": "cosine"}


def test_learning_rate_decays_are_checked():
    assert tfbin.recipes.learning_rate(1e-3) == 1e-3
    with pytest.raises(ValueError, match="Unknown learning-rate decay 'linear'"):
        tfbin.recipes.learning_rate(1e-3, "linear", 10)
    with pytest.raises(ValueError, match="needs the run's number of steps"):
        tfbin.recipes.learning_rate(1e-3, "cosine")
    with pytest.raises(ValueError, match="lr_decay is a choice"):
        tuning.SearchSpace("irnet", lr_decay=(0.0, 1.0))


@pytest.mark.margin(exact="trial counts and statuses after reloading")
def test_search_resumes_in_the_same_directory(tmp_path):
    train, validation = _data()
    first = tuning.RandomSearch("lenet_bnn", "ste", max_trials=1, max_epochs=1, directory=str(tmp_path), seed=0)
    first.search(train, validation)
    again = tuning.RandomSearch("lenet_bnn", "ste", max_trials=2, max_epochs=1, directory=str(tmp_path), seed=0)
    assert len(again.oracle.trials) == 1  # reloaded
    again.search(train, validation)
    assert len(again.oracle.trials) == 2 and all(t.status == "COMPLETED" for t in again.oracle.trials.values())


def test_bad_ranges_give_clear_errors():
    with pytest.raises(ValueError, match="no searched hyperparameter 'v_end'"):
        tuning.SearchSpace("irnet", v_end=(1, 2))
    with pytest.raises(ValueError, match="min < max"):
        tuning.SearchSpace("irnet", t_max=(10.0, 1.0))
    with pytest.raises(ValueError, match="log range needs min > 0"):
        tuning.SearchSpace("irnet", t_min=(0.0, 1.0))
    with pytest.raises(ValueError, match="refresh_every is a choice"):
        tuning.SearchSpace("dab", refresh_every=(1, 8))
    with pytest.raises(ValueError, match="Unknown recipe 'nope'"):
        tuning.SearchSpace("nope")
    with pytest.raises(ValueError, match="Unknown model"):
        tuning.RandomSearch("nope", "irnet")
    with pytest.raises(ValueError, match="budget >= 1 and factor >= 2"):
        tuning.Hyperband("lenet_bnn", "irnet", factor=1)
    space = tuning.SearchSpace("irnet", t_max=(5.0, 50.0), t_min=[0.1, 0.01], lr=1e-3)
    assert tuning.SearchSpace.from_config(json.loads(json.dumps(space.get_config()))).entries == space.entries


@pytest.mark.slow
def test_distributed_chief_and_two_workers_finish_their_trials(tmp_path):
    script = textwrap.dedent(
        """
        import os, sys
        import numpy as np
        import tfbin
        import tensorflow as tf
        from tfbin import tuning
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 1, (96, 28, 28, 1)).astype("float32")
        y = (x[:, :14].mean((1, 2, 3)) > x[:, 14:].mean((1, 2, 3))).astype("int64")
        train = tf.data.Dataset.from_tensor_slices((x[:64], y[:64])).batch(32)
        validation = tf.data.Dataset.from_tensor_slices((x[64:], y[64:])).batch(32)
        tuner = tuning.Hyperband("lenet_bnn", "irnet", max_epochs=1, budget=3, factor=3, directory=sys.argv[1], seed=0)
        tuner.search(train, validation)
        print("finished", os.environ["KERASTUNER_TUNER_ID"], flush=True)
        """
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = {**os.environ, "KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": "127.0.0.1",
               "KERASTUNER_ORACLE_PORT": str(port), "TF_CPP_MIN_LOG_LEVEL": "3"}
        procs[tuner_id] = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], env=env,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = {}
    try:
        for tuner_id, proc in procs.items():
            outputs[tuner_id] = proc.communicate(timeout=480)
    finally:
        for proc in procs.values():
            proc.kill()
    for tuner_id, proc in procs.items():
        assert proc.returncode == 0, (tuner_id, outputs[tuner_id][1][-2000:])
        assert f"finished {tuner_id}" in outputs[tuner_id][0]
    trials = [json.load(open(os.path.join(tmp_path, "untitled_project", d, "trial.json")))
              for d in os.listdir(os.path.join(tmp_path, "untitled_project")) if d.startswith("trial_")]
    assert len(trials) == 6 and all(t["status"] == "COMPLETED" for t in trials)  # Hyperband(budget 3, factor 3)
    assert sorted(t["hyperparameters"]["values"]["tuner/epochs"] for t in trials) == [1, 1, 1, 3, 3, 3]
    assert all("val_hard_accuracy" in t["metrics"]["metrics"] for t in trials)


@pytest.mark.margin(exact="trial ids, the first trial's default values, printed scores against the summary, the trained recipe's params, error messages")
def test_tune_job_writes_its_files_and_train_trains_the_best_recipe_with_its_lr(tmp_path, capsys):
    from tfbin.jobs.train import train
    from tfbin.jobs.tune import tune

    try:
        tfbin.data.load("fashion_mnist", "train[:1]")
    except tfbin.data.DataUnavailableError as err:
        pytest.skip(str(err))
    out = tmp_path / "search"
    summary = tune(model="lenet_bnn", recipe="irnet", trials=2, max_epochs=1, out=str(out), tuner="random",
                   train_samples=256, validation_samples=128)
    printed = capsys.readouterr().out
    assert [r["trial"] for r in summary["trials"]] == ["0", "1"]
    assert summary["trials"][0]["values"] == {"t_min": 1.0, "t_max": 3.16, "update_freq": "epoch", "lr": 1e-3, "lr_decay": "constant"}  # the defaults first
    for row in summary["trials"]:
        assert f"  {row['score']:8.4f}  " in printed
    best = tfbin.recipes.Recipe.from_json((out / "best_recipe.json").read_text())
    assert best.params["t_max"] == summary["best_values"]["t_max"]
    with open(out / "trials.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    run = train(model="lenet_bnn", recipe=str(out / "best_recipe.json"), epochs=2, train_samples=128, test_samples=64,
                out=str(tmp_path / "run"), verbose=0, print_fn=None)
    used = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert (run["lr"], run["lr_decay"]) == (summary["best_values"]["lr"], summary["best_values"]["lr_decay"])
    assert used["params"]["epochs"] == 2 and used["params"]["t_max"] == summary["best_values"]["t_max"]
    with pytest.raises(ValueError, match="not a tfbin recipe JSON file"):
        (tmp_path / "bad.json").write_text('{"name": "irnet"}')
        train(model="lenet_bnn", recipe=str(tmp_path / "bad.json"), out=str(tmp_path / "run2"), print_fn=None)
    edited = json.loads((out / "best_recipe.json").read_text())
    edited["kernel_constraint"] = "weight_clip"
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    with pytest.raises(ValueError, match="edited by hand.*pass --epochs 1"):
        train(model="lenet_bnn", recipe=str(tmp_path / "edited.json"), epochs=2, out=str(tmp_path / "run3"), print_fn=None)
    with pytest.raises(ValueError, match="other settings .*recipe: 'irnet' then, 'ste' now"):
        tune(model="lenet_bnn", recipe="ste", trials=2, max_epochs=1, out=str(out), tuner="random",
             train_samples=256, validation_samples=128)


@pytest.mark.margin(exact="search fails before any trial: messages, no trial")
def test_setup_errors_stop_before_any_trial(tmp_path):
    train, validation = _data()
    tuner = tuning.Hyperband("lenet_bnn", "irnet", max_epochs=1, budget=3, directory=str(tmp_path))
    with pytest.raises(ValueError, match="assert_cardinality"):
        tuner.search(train.filter(lambda x, y: True), validation)
    assert not tuner.oracle.trials
    with pytest.raises(ValueError, match="'val_loss' is not a trial metric"):
        tuning.RandomSearch("lenet_bnn", "irnet", objective="val_loss", directory=str(tmp_path / "b"))


def test_recipe_search_declarations_are_checked_where_they_are_registered():
    with pytest.raises(ValueError, match="default refresh=2 is not among its searched choices"):
        tfbin.recipes.register("bad_choice", search={"refresh": tfbin.recipes.Choice(1, 4)})(lambda refresh=2: None)
    with pytest.raises(ValueError, match="default v=None is not inside its searched Range"):
        tfbin.recipes.register("bad_range", search={"v": tfbin.recipes.Range(1, 5)})(lambda v=None: None)
    with pytest.raises(ValueError, match="must be a tfbin.recipes.Range or Choice"):
        tfbin.recipes.register("bad_spec", search={"v": (1.0, 5.0)})(lambda v=2.0: None)
    assert not {"bad_choice", "bad_range", "bad_spec"} & set(tfbin.recipes.available())
    assert tuning.SearchSpace("irnet_cmim", bank_size=[1024, 4096]).entries["bank_size"][1] == 1024  # the default stays


@pytest.mark.margin(exact="recipe params and schedule configs of the committed files (nothing trains: the scan reads its `__file__` as running this module)")
def test_the_committed_searched_recipes_rebuild_for_other_run_lengths_with_their_learning_rate():
    # bench/results/searched/*.json are what docs/api.md tells users to pass to `tfbin train --recipe`.
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "results", "searched")
    files = sorted(f for f in os.listdir(folder) if f.endswith(".json"))
    assert {"irnet.json", "self_binarizing.json"} <= set(files)
    for name in files:
        with open(os.path.join(folder, name)) as f:
            recipe = tfbin.recipes.Recipe.from_json(f.read())
        assert recipe.name == name[: -len(".json")] and recipe.params["epochs"] == 3
        longer = tfbin.recipes.rebuild(recipe, epochs=10)
        assert longer.params["epochs"] == 10 and longer.params["training"] == recipe.params["training"]
        assert recipe.params["training"]["lr"] > 0
        assert {k: v for k, v in longer.params.items() if k != "epochs"} == {k: v for k, v in recipe.params.items() if k != "epochs"}
        if recipe.name == "irnet":  # EDE's t spans the whole run
            assert longer.get_config()["schedules"]["t"]["config"]["epochs"] == 10


def test_hyperband_full_data_bracket_opens_with_the_defaults(tmp_path):
    """Hyperband's last bracket trains on all the data from scratch: its first trial must be the
    recipe's defaults again (they opened the first bracket on 1/budget of the data), so the
    defaults always get a full-data score the search has to beat. Driven through the oracle
    with made-up scores (nothing trains)."""
    tuner = tuning.Hyperband("lenet_bnn", "self_binarizing", max_epochs=1, budget=9, factor=3, seed=5, directory=str(tmp_path))
    oracle = tuner.oracle
    signature = inspect.signature(tfbin.recipes.self_binarizing).parameters
    defaults = {name: signature[name].default for name in ("v_end", "v_kernel_end", "sharpen", "warmup", "finish")}
    scores = iter(np.random.default_rng(0).uniform(0.5, 0.9, 100))
    created = []
    while True:
        trial = oracle.create_trial(f"tuner{len(created)}")
        if trial.status != "RUNNING":
            break
        created.append(trial)
        oracle.update_trial(trial.trial_id, {tuner.oracle.objective.name: next(scores)})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    values = [t.hyperparameters.values for t in created]
    is_default = [{k: v[k] for k in defaults} == defaults for v in values]
    assert len(created) == 23  # Hyperband(9, 3), one iteration (the tuner's docstring)
    assert is_default[0] and values[0]["tuner/epochs"] == 1  # the first bracket, on 1/9 of the data
    fresh_full = [i for i, v in enumerate(values) if v["tuner/epochs"] == 9 and "tuner/trial_id" not in v]
    assert fresh_full and is_default[fresh_full[0]], [values[i] for i in fresh_full]
    fresh = [i for i, v in enumerate(values) if "tuner/trial_id" not in v]  # promotions carry a parent's values
    assert [i for i in fresh if is_default[i]] == [0, fresh_full[0]]  # there and nowhere else
