"""bmxnet.optimizer_states: optimizer states and update counts round-trip through an NDArray file
(so training continues exactly), and a pickle is refused without being unpickled."""
import os
import pickle

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from bmxnet.train import optimizer_states
from test_datasets import RunsCode

OPTIMIZERS = [("radam", {}), ("adam", {}), ("sgd", {"momentum": 0.9}), ("sgd", {"momentum": 0.0}),
              ("nag", {"momentum": 0.9})]


def tiny_trainer(optimizer, options):
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(5, in_units=4), gluon.nn.Dense(2, in_units=5))
    net.initialize(mx.init.Xavier())
    schedule = mx.lr_scheduler.CosineScheduler(max_update=8, base_lr=0.1)  # the rate depends on the update count
    trainer = gluon.Trainer(net.collect_params(), optimizer, dict(learning_rate=0.1, lr_scheduler=schedule, **options))
    return net, trainer


def train_steps(net, trainer, steps, seed):
    rng = np.random.RandomState(seed)
    for _ in range(steps):
        x, y = mx.nd.array(rng.normal(size=(6, 4))), mx.nd.array(rng.normal(size=(6, 2)))
        with mx.autograd.record():
            loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        trainer.step(6)


def weights(net):
    return [p.data().asnumpy() for p in net.collect_params().values()]


@pytest.mark.parametrize("optimizer, options", OPTIMIZERS, ids=["radam", "adam", "sgd", "sgd-no-momentum", "nag"])
def test_restored_states_continue_exactly_like_the_uninterrupted_run(tmp_path, optimizer, options):
    net, trainer = tiny_trainer(optimizer, options)
    train_steps(net, trainer, 3, seed=1)
    net.save_parameters(str(tmp_path / "w.params"))
    optimizer_states.save(trainer, str(tmp_path / "t.states"), net)
    train_steps(net, trainer, 3, seed=2)

    resumed, resumed_trainer = tiny_trainer(optimizer, options)
    resumed.load_parameters(str(tmp_path / "w.params"))
    assert optimizer_states.load(resumed_trainer, str(tmp_path / "t.states"), resumed) == 3
    train_steps(resumed, resumed_trainer, 3, seed=2)
    for expected, actual in zip(weights(net), weights(resumed)):
        np.testing.assert_array_equal(actual, expected)
    assert resumed_trainer._optimizer.num_update == trainer._optimizer.num_update == 6
    assert resumed_trainer._optimizer._all_index_update_counts == trainer._optimizer._all_index_update_counts
    assert resumed_trainer.learning_rate == trainer.learning_rate

    fresh, fresh_trainer = tiny_trainer(optimizer, options)  # without the states the run differs
    fresh.load_parameters(str(tmp_path / "w.params"))
    train_steps(fresh, fresh_trainer, 3, seed=2)
    assert any(not np.array_equal(a, b) for a, b in zip(weights(net), weights(fresh)))


def dense_layers_until_the_count_gains_a_digit():
    """Makes throw-away Dense layers until the next two get numbers of different lengths
    (dense9, dense10), which sort the other way round than the layers were made."""
    while True:
        number = int(gluon.nn.Dense(1).prefix[len("dense"):-1])
        if len(str(number + 1)) != len(str(number + 2)):
            return


def test_states_follow_parameter_names_not_the_trainers_sorted_order(tmp_path):
    dense_layers_until_the_count_gains_a_digit()
    net, trainer = tiny_trainer("adam", {})  # dense9, dense10: the trainer puts the second layer first
    train_steps(net, trainer, 2, seed=1)
    net.save_parameters(str(tmp_path / "w.params"))
    optimizer_states.save(trainer, str(tmp_path / "t.states"), net)
    train_steps(net, trainer, 2, seed=2)
    resumed, resumed_trainer = tiny_trainer("adam", {})  # dense11, dense12: the first layer first
    assert [p.shape for p in trainer._params] != [p.shape for p in resumed_trainer._params]
    resumed.load_parameters(str(tmp_path / "w.params"))
    with pytest.raises(ValueError, match="has shape .* but its parameter"):  # by index the states do not fit
        optimizer_states.load(resumed_trainer, str(tmp_path / "t.states"))
    optimizer_states.load(resumed_trainer, str(tmp_path / "t.states"), resumed)
    train_steps(resumed, resumed_trainer, 2, seed=2)
    for expected, actual in zip(weights(net), weights(resumed)):
        np.testing.assert_array_equal(actual, expected)


def test_nested_states_with_none_keep_their_structure(tmp_path):
    net, trainer = tiny_trainer("adam", {})
    train_steps(net, trainer, 1, seed=0)
    updater = trainer._updaters[0]
    shape = trainer._params[0].shape
    parts = [mx.nd.full(shape, v) for v in (1, 2, 3)]
    updater.states[0] = (parts[0], (parts[1], None), [parts[2]])
    optimizer_states.save(trainer, str(tmp_path / "t.states"))
    _, other = tiny_trainer("adam", {})
    optimizer_states.load(other, str(tmp_path / "t.states"))
    state = other._updaters[0].states[0]
    assert isinstance(state, tuple) and isinstance(state[1], tuple) and state[1][1] is None and isinstance(state[2], list)
    for value, array in zip((1, 2, 3), (state[0], state[1][0], state[2][0])):
        np.testing.assert_array_equal(array.asnumpy(), np.full(shape, value, np.float32))


def test_crafted_pickle_states_are_refused_without_running_code(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.states"
    path.write_bytes(pickle.dumps(RunsCode(os.system, "touch %s" % marker), protocol=2))
    _, trainer = tiny_trainer("adam", {})
    with pytest.raises(ValueError, match="is a pickle .* refused because unpickling can run code"):
        optimizer_states.load(trainer, str(path))
    assert not marker.exists()


def test_gluon_trainer_pickle_states_are_refused(tmp_path):
    net, trainer = tiny_trainer("adam", {})
    train_steps(net, trainer, 1, seed=0)
    trainer.save_states(str(tmp_path / "old.states"))
    with pytest.raises(ValueError, match="gluon.Trainer.save_states"):
        optimizer_states.load(trainer, str(tmp_path / "old.states"))


def saved_states(tmp_path, optimizer="adam", net=False):
    model, trainer = tiny_trainer(optimizer, {})
    train_steps(model, trainer, 2, seed=0)
    path = str(tmp_path / "t.states")
    optimizer_states.save(trainer, path, model if net else None)
    return path


def rewrite_meta(path, change):
    import json
    arrays = mx.nd.load(path)
    meta = json.loads(arrays[optimizer_states.META_NAME].asnumpy().tobytes())
    change(meta)
    arrays[optimizer_states.META_NAME] = mx.nd.array(np.frombuffer(json.dumps(meta).encode(), np.uint8), dtype=np.uint8)
    mx.nd.save(path, arrays)


def first_layout(layout):
    """A change of the states record: the first parameter's layout becomes `layout`."""
    def change(meta):
        meta["states"][0][1] = layout
    return change


def nested(depth):
    layout = None
    for _ in range(depth):
        layout = {"tuple": [layout]}
    return layout


def test_damaged_or_foreign_states_are_one_line_errors(tmp_path):
    _, trainer = tiny_trainer("adam", {})
    path = saved_states(tmp_path)
    raw = open(path, "rb").read()
    cases = [
        (lambda: open(path, "wb").write(raw[:len(raw) // 2]), "truncated or corrupt"),
        (lambda: open(path, "wb").write(b"not a states file at all"), "not a trainer-states file"),
        (lambda: mx.nd.save(path, {"arg:w": mx.nd.zeros((2,))}), "is it a .params file?"),
        (lambda: rewrite_meta(path, lambda m: m.update(num_update=1)), "a parameter updated more often"),
        (lambda: rewrite_meta(path, lambda m: m.update(version=99)), "version 99"),
        (lambda: rewrite_meta(path, first_layout("state/nowhere")), "missing or used twice"),
        (lambda: rewrite_meta(path, lambda m: m["states"].append([9, None])), "states of parameter 9, but the model has 4"),
        (lambda: rewrite_meta(path, lambda m: m["states"].pop()), "are not in it"),
        (lambda: rewrite_meta(path, first_layout(nested(40))), "nested 9 deep"),
        (lambda: rewrite_meta(path, first_layout({"set": []})), "layout"),
        (lambda: rewrite_meta(path, lambda m: m["states"].append(m["states"][0])), "a parameter listed twice"),
    ]
    for damage, message in cases:
        open(path, "wb").write(raw)
        damage()
        with pytest.raises(ValueError, match=message):
            optimizer_states.load(trainer, path)


def test_states_of_another_optimizer_or_model_are_refused(tmp_path):
    path = saved_states(tmp_path, "adam")
    _, sgd = tiny_trainer("sgd", {"momentum": 0.9})
    with pytest.raises(ValueError, match="states of optimizer adam, but this run uses sgd"):
        optimizer_states.load(sgd, path)
    wider = gluon.nn.HybridSequential()
    wider.add(gluon.nn.Dense(6, in_units=4), gluon.nn.Dense(2, in_units=6))
    wider.initialize()
    trainer = gluon.Trainer(wider.collect_params(), "adam")
    with pytest.raises(ValueError, match=r"has shape \(5,.*\) but its parameter \(6,.*a different model"):
        optimizer_states.load(trainer, path)
    single = gluon.nn.HybridSequential()  # no second layer for the states of '1.weight' and '1.bias'
    single.add(gluon.nn.Dense(5, in_units=4))
    single.initialize()
    with pytest.raises(ValueError, match=r"states of parameter 1\.(weight|bias), which the model does not have"):
        optimizer_states.load(gluon.Trainer(single.collect_params(), "adam"), saved_states(tmp_path, net=True), single)
