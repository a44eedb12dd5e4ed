"""Every public entry point, fed bad and odd inputs: a clear error naming the argument, or Keras' value.

The grid crosses shapes, dtypes, a meta device, NaN/inf, empty and 0-d inputs, lists, numpy and object
arrays and wrong types. For each call it asserts:

* an error is a `TypeError` or `ValueError` whose message names an argument in backticks;
* after an error every state is as it was (a metric's `state_dict`; a trainer's weights, optimizer state,
  shuffle generator, metric states and History);
* input that is not numbers is never accepted (no silent result);
* where ours and Keras both give a value they agree within 1e-6, except where Keras casts non-finite or
  non-integer labels to the scores' dtype (docs/semantics.md §19: a label is compared as a number here).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import torch_keras_metrics as tkm
from tests.conftest import to_numpy  # noqa: F401  (sets KERAS_BACKEND=torch before keras is imported)

keras = pytest.importorskip("keras")

_g = torch.Generator().manual_seed(0)


def _rand(*shape):
    return torch.rand(*shape, generator=_g)


NUMERIC = {
    "f(8,3)": _rand(8, 3),
    "i(8,)": torch.randint(0, 3, (8,), generator=_g),
    "i(8,1)": torch.randint(0, 3, (8, 1), generator=_g),
    "f(8,)": _rand(8),
    "f(8,1)": _rand(8, 1),
    "f(3,3)": _rand(3, 3),
    "f(8,3,2)": _rand(8, 3, 2),
    "0-d": torch.tensor(1.0),
    "empty(0,3)": torch.zeros(0, 3),
    "empty(0,)": torch.zeros(0),
    "nan(8,3)": torch.full((8, 3), math.nan),
    "inf(8,)": torch.full((8,), math.inf),
    "bool(8,)": torch.ones(8, dtype=torch.bool),
    "f64(8,3)": _rand(8, 3).double(),
    "u8(8,)": torch.ones(8, dtype=torch.uint8),
    "list": [0, 1, 2, 1, 0, 1, 2, 2],
    "numpy(8,3)": np.random.default_rng(0).random((8, 3)),
}
NOT_NUMBERS = {
    "complex": torch.ones(8, dtype=torch.complex64),
    "meta": torch.zeros(8, 3, device="meta"),
    "str": "abc",
    "None": None,
    "ragged list": [[1, 2], [3]],
    "object array": np.array([object()] * 8),
    "dict": {"a": 1},
}
INPUTS = {**NUMERIC, **NOT_NUMBERS}

_ONE_HOT = (np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[0.9, 0.1], [0.2, 0.8]]))
_SPARSE = (np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]))
_BINARY = (np.array([1.0, 0.0]), np.array([1.0, 0.0]))
# each metric starts with one good batch, so that "unchanged" is not "still zero"
METRICS = {
    "Accuracy": ({}, _BINARY),
    "BinaryAccuracy": ({}, _BINARY),
    "CategoricalAccuracy": ({}, _ONE_HOT),
    "SparseCategoricalAccuracy": ({}, _SPARSE),
    "TopKCategoricalAccuracy": ({"k": 2}, _ONE_HOT),
    "SparseTopKCategoricalAccuracy": ({"k": 2}, _SPARSE),
}


def _states(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _same(a, b):
    def equal(x, y):
        return x.shape == y.shape and x.dtype == y.dtype and bool((x == y).logical_or(x.isnan() & y.isnan()).all())

    return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)


def _names_an_argument(err: BaseException) -> bool:
    return isinstance(err, (TypeError, ValueError)) and "`" in str(err)


def _labels_cast_by_keras(y_true, y_pred) -> bool:
    """Keras casts y_true to y_pred's dtype before comparing labels: non-finite or non-integer labels, or
    scores in bool/uint8, then compare as other numbers (a deliberate difference, docs/semantics.md §19)."""
    t = torch.as_tensor(np.asarray(y_true))
    p = torch.as_tensor(np.asarray(y_pred))
    odd_labels = t.is_floating_point() and not bool(torch.all(torch.isfinite(t) & (t == t.round())))
    return odd_labels or p.dtype in (torch.bool, torch.uint8)


def _keras_result(cls, kwargs, seed, y_true, y_pred):
    km = getattr(keras.metrics, cls)(**kwargs)
    km.update_state(*seed)
    km.update_state(np.asarray(y_true), np.asarray(y_pred))
    return float(km.result())


@pytest.mark.parametrize("cls", list(METRICS))
def test_metric_update_state_on_every_pair_of_inputs(cls):
    kwargs, seed = METRICS[cls]
    unclear, changed, accepted, disagree = [], [], [], []
    for tn, y_true in INPUTS.items():
        for pn, y_pred in INPUTS.items():
            m = getattr(tkm, cls)(**kwargs)
            m.update_state(*(torch.as_tensor(a) for a in seed))
            before = _states(m)
            try:
                m.update_state(y_true, y_pred)
                ours = float(m.result())
            except Exception as err:
                if not _names_an_argument(err):
                    unclear.append((tn, pn, f"{type(err).__name__}: {err}"))
                if not _same(before, _states(m)):
                    changed.append((tn, pn))
                continue
            if tn in NOT_NUMBERS or pn in NOT_NUMBERS:
                accepted.append((tn, pn))
                continue
            try:
                theirs = _keras_result(cls, kwargs, seed, y_true, y_pred)
            except Exception:  # Keras crashes inside (an IndexError, a shape error): no rule to follow
                assert 0.0 <= ours <= 1.0, (tn, pn, ours)
                continue
            if not (abs(ours - theirs) <= 1e-6 or _labels_cast_by_keras(y_true, y_pred)):
                disagree.append((tn, pn, ours, theirs))
    assert not unclear, unclear[:5]
    assert not changed, changed[:5]
    assert not accepted, accepted[:5]
    assert not disagree, disagree[:5]


@pytest.mark.parametrize("call", ["update_state", "forward"])
def test_mean_and_wrapper_on_every_input(call):
    for name, values in INPUTS.items():
        for weight_name, weight in INPUTS.items():  # "None": no weights
            m = tkm.Mean()
            m.update_state(torch.tensor([1.0, 2.0]))
            before = _states(m)
            try:
                (m.update_state if call == "update_state" else m)(values, weight)
                value = m.result()
            except Exception as err:
                assert _names_an_argument(err), (name, weight_name, err)
                assert _same(before, _states(m)), (name, weight_name)
                continue
            assert name not in NOT_NUMBERS and (weight is None or weight_name not in NOT_NUMBERS), (
                name,
                weight_name,
                value,
            )
    wrapper = tkm.MeanMetricWrapper(tkm.losses.mean_absolute_error, name="mae")
    wrapper.update_state(torch.zeros(2, 2), torch.ones(2, 2))
    before = _states(wrapper)
    with pytest.raises(ValueError, match=r"`y_true` of shape \(3, 2\) and `y_pred` of shape \(4, 2\)"):
        wrapper.update_state(torch.zeros(3, 2), torch.zeros(4, 2))
    assert _same(before, _states(wrapper))


def test_metric_constructors_name_their_bad_arguments():
    for make, match in [
        (lambda: tkm.Accuracy(dtype="nonsense"), r"`dtype`.*'nonsense'"),
        (lambda: tkm.Accuracy(dtype=torch.int32), r"`dtype`"),
        (lambda: tkm.BinaryAccuracy(threshold="0.5"), r"`threshold`"),
        (lambda: tkm.TopKCategoricalAccuracy(k=0), r"`k`"),
        (lambda: tkm.TopKCategoricalAccuracy(k=2.5), r"`k`"),
        (lambda: tkm.get("acuracy"), r"Did you mean 'accuracy'"),
        (lambda: tkm.get(42), r"A metric must be"),
    ]:
        with pytest.raises((TypeError, ValueError), match=match):
            make()


def test_meta_inputs_are_refused_by_name_unless_the_metric_is_on_meta():
    y_true, y_pred = torch.zeros(4, dtype=torch.long, device="meta"), torch.zeros(4, 3, device="meta")
    m = tkm.SparseCategoricalAccuracy()
    with pytest.raises(TypeError, match="`y_pred` is a meta tensor"):
        m(y_true, y_pred)
    with pytest.raises(TypeError, match="`values` is a meta tensor"):
        tkm.Mean()(torch.zeros(4, device="meta"))
    on_meta = tkm.SparseCategoricalAccuracy().to("meta")  # shapes only: the state follows the inputs
    assert on_meta(y_true, y_pred).device.type == "meta"


# --------------------------------------------------------------------------- the Trainer


def _trainer(**kwargs):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    kwargs.setdefault("metrics", ["accuracy"])
    return tkm.Trainer(model, "adam", "sparse_categorical_crossentropy", device="cpu", **kwargs)


def _snapshot(trainer):
    return {
        "weights": _states(trainer.model),
        "optimizer": repr(trainer.optimizer.state_dict()),
        "generator": trainer.generator.get_state().clone(),
        "metrics": [m.state() for m in trainer.metrics],
        "history": None if trainer.history is None else repr(trainer.history.state_dict()),
    }


def _assert_unchanged(before, after, case):
    assert _same(before["weights"], after["weights"]), case
    assert before["optimizer"] == after["optimizer"], case
    assert torch.equal(before["generator"], after["generator"]), case
    assert len(before["metrics"]) == len(after["metrics"]), case
    assert all(torch.equal(a, b) for a, b in zip(before["metrics"], after["metrics"])), case
    assert before["history"] == after["history"], case


X, Y = torch.randn(40, 4, generator=_g), torch.randint(0, 3, (40,), generator=_g)
_late = Y.clone()
_late[-1] = 3  # out of range for 3 classes, in the last batch

FIT_CASES = {
    "x empty": dict(x=X[:0], y=Y[:0]),
    "y short": dict(y=Y[:10]),
    "x wrong width": dict(x=torch.randn(40, 5)),
    "x strings": dict(x="abc"),
    "x None": dict(x=None),
    "x object array": dict(x=np.array([object()] * 40)),
    "y ragged": dict(y=[[1, 2], [3]]),
    "y late label out of range": dict(y=_late, shuffle=False),
    "y float one-hot for a sparse loss": dict(y=torch.nn.functional.one_hot(Y, 3).float()),
    "sample_weight complex": dict(sample_weight=torch.ones(40, dtype=torch.complex64)),
    "sample_weight short": dict(sample_weight=torch.ones(7)),
    "sample_weight strings": dict(sample_weight="w"),
    "batch_size 0": dict(batch_size=0),
    "batch_size float": dict(batch_size=2.5),
    "epochs negative": dict(epochs=-1),
    "epochs str": dict(epochs="2"),
    "validation_split str": dict(validation_split="0.2"),
    "validation_split 1": dict(validation_split=1.0),
    "validation_data wrong width": dict(validation_data=(torch.randn(8, 5), Y[:8])),
    "validation_data bad label": dict(validation_data=(X[:8], torch.full((8,), 7))),
    "validation_data late bad label": dict(validation_data=(X, _late), batch_size=8),
    "validation_data not a tuple": dict(validation_data="val"),
    "validation_freq 0": dict(validation_freq=0),
    "callbacks object": dict(callbacks=[object()]),
    "callbacks str": dict(callbacks="history"),
    "resume_from int": dict(resume_from=123),
    "class_weight list": dict(class_weight=[1.0, 2.0]),
    "class_weight with sample_weight": dict(class_weight={0: 1.0}, sample_weight=torch.ones(40)),
    "verbose 3": dict(verbose=3),
    "steps_per_epoch 0": dict(steps_per_epoch=0),
    "validation_steps str": dict(validation_steps="1"),
}


@pytest.mark.parametrize("case", list(FIT_CASES))
def test_a_refused_fit_changes_nothing(case):
    trainer = _trainer()
    trainer.fit(X, Y, batch_size=16, epochs=1, verbose=0)  # a trained state: metrics counted, a History
    before = _snapshot(trainer)
    kwargs = dict(x=X, y=Y, batch_size=16, epochs=2, verbose=0) | FIT_CASES[case]
    with pytest.raises((TypeError, ValueError)) as info:
        trainer.fit(**kwargs)
    assert "`" in str(info.value), (case, info.value)
    _assert_unchanged(before, _snapshot(trainer), case)


EVALUATE_CASES = {
    "x empty": dict(x=X[:0], y=Y[:0]),
    "y late label out of range": dict(y=_late),
    "x wrong width": dict(x=torch.randn(40, 5)),
    "sample_weight complex": dict(sample_weight=torch.ones(40, dtype=torch.complex64)),
    "steps 0": dict(steps=0),
    "callbacks object": dict(callbacks=[object()]),
}


@pytest.mark.parametrize("case", list(EVALUATE_CASES))
def test_a_refused_evaluate_changes_nothing(case):
    trainer = _trainer()
    trainer.fit(X, Y, batch_size=16, epochs=1, verbose=0)
    before = _snapshot(trainer)
    with pytest.raises((TypeError, ValueError)) as info:
        trainer.evaluate(**(dict(x=X, y=Y, batch_size=16, verbose=0) | EVALUATE_CASES[case]))
    assert "`" in str(info.value) or "does not fit the loss" in str(info.value), (case, info.value)
    _assert_unchanged(before, _snapshot(trainer), case)


def test_trainer_constructor_names_its_bad_arguments():
    model = torch.nn.Linear(4, 3)
    for kwargs, match in [
        (dict(optimizer=None), "`optimizer`"),
        (dict(metrics="accuracy"), r"`metrics` must be a list.*\['accuracy'\]"),
        (dict(weighted_metrics="accuracy"), "`weighted_metrics` must be a list"),
        (dict(metrics=["acuracy"]), "Did you mean 'accuracy'"),
        (dict(precision="fp8"), "`precision`"),
        (dict(distributed="yes"), "`distributed`"),
        (dict(timeout=-1), "`timeout`"),
        (dict(loss="nonsense"), "nonsense"),
    ]:
        args = dict(optimizer="adam", loss="sparse_categorical_crossentropy", device="cpu") | kwargs
        with pytest.raises((TypeError, ValueError), match=match):
            tkm.Trainer(model, **args)


def test_one_callback_is_taken_as_keras_flattens_it_and_validation_split_none_is_no_split():
    trainer = _trainer()
    history = tkm.History()
    assert trainer.fit(X, Y, batch_size=16, verbose=0, callbacks=history, validation_split=None) is history
    assert sorted(history.history) == ["accuracy", "loss"]


def test_floating_inputs_are_cast_to_the_model_dtype_as_keras_casts_to_its_input():
    a, b = _trainer(), _trainer()
    ha = a.fit(X, Y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    hb = b.fit(X.double(), Y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    assert ha.history == hb.history
    assert torch.equal(a.predict(X, verbose=0), b.predict(X.double(), verbose=0))


def test_a_bad_label_in_the_last_batch_is_named_before_the_first_step():
    trainer = _trainer()
    before = _snapshot(trainer)
    y = Y.clone()
    y[-1], y[-2] = 3, -2
    with pytest.raises(ValueError, match=r"`y` holds the label\(s\) \[-2, 3\], which the loss cannot take"):
        trainer.fit(X, y, batch_size=16, shuffle=False, verbose=0)
    _assert_unchanged(before, _snapshot(trainer), "late labels")
    with pytest.raises(ValueError, match=r"`validation_data` holds the label\(s\) \[-2, 3\]"):
        trainer.fit(X, Y, batch_size=16, validation_data=(X, y), verbose=0)
    _assert_unchanged(before, _snapshot(trainer), "late validation labels")


# --------------------------------------------------------------------------- every other metric class

_REQUIRED = {
    "IoU": {"num_classes": 3, "target_class_ids": [0, 2]},
    "MeanIoU": {"num_classes": 3},
    "OneHotIoU": {"num_classes": 3, "target_class_ids": [0, 2]},
    "OneHotMeanIoU": {"num_classes": 3},
    "PrecisionAtRecall": {"recall": 0.5},
    "RecallAtPrecision": {"precision": 0.5},
    "SensitivityAtSpecificity": {"specificity": 0.5},
    "SpecificityAtSensitivity": {"sensitivity": 0.5},
}
_OTHERS = sorted(
    name
    for name in tkm.__all__
    if isinstance(getattr(tkm, name), type)
    and issubclass(getattr(tkm, name), (tkm.Mean, tkm.StatefulMetric))
    and name not in METRICS
    and name not in ("Mean", "MeanMetricWrapper", "StatefulMetric", "Sum")
)
_SEEDS = [
    (_rand(8, 3).round(), _rand(8, 3)),
    (torch.randint(0, 3, (8,), generator=_g), _rand(8, 3)),
    (_rand(8), _rand(8)),
]
_PLAIN = {"f(8,3)", "i(8,)", "f(8,)", "f(8,1)", "0-d", "empty(0,3)", "empty(0,)", "f(3,3)"}


def _seeded(cls_name):
    """The metric, after the first of the seed batches it takes (so "unchanged" is not "still empty")."""
    for y_true, y_pred in _SEEDS:
        m = getattr(tkm, cls_name)(**_REQUIRED.get(cls_name, {}))
        try:
            m.update_state(y_true, y_pred)
        except (TypeError, ValueError):
            continue
        if bool(torch.isfinite(m.result()).all()):
            return m
    raise AssertionError(f"{cls_name} takes none of the seed batches")


@pytest.mark.parametrize("cls", _OTHERS)
def test_every_other_metric_refuses_by_name_and_changes_nothing(cls):
    unclear, changed, accepted, non_finite = [], [], [], []
    pairs = [
        (tn, pn)
        for tn in INPUTS
        for pn in INPUTS
        if tn in NOT_NUMBERS or pn in NOT_NUMBERS or tn == pn or {tn, pn} <= _PLAIN
    ]
    for tn, pn in pairs:
        m = _seeded(cls)
        before = _states(m)
        try:
            m.update_state(INPUTS[tn], INPUTS[pn])
            result = m.result()
        except Exception as err:
            if not _names_an_argument(err):
                unclear.append((tn, pn, f"{type(err).__name__}: {err}"))
            if not _same(before, _states(m)):
                changed.append((tn, pn))
            continue
        if tn in NOT_NUMBERS or pn in NOT_NUMBERS:
            accepted.append((tn, pn))
        elif not bool(torch.isfinite(result).all()) and _keras_is_finite(cls, tn, pn):
            non_finite.append((tn, pn, result))
    assert not unclear, unclear[:5]
    assert not changed, changed[:5]
    assert not accepted, accepted[:5]
    assert not non_finite, non_finite[:5]


def _keras_is_finite(cls, tn, pn):
    """Whether Keras' metric, seeded as ours and fed the same batch, gives a finite result (NaN from empty or
    constant inputs is Keras' value too)."""
    m = _seeded(cls)
    seed = next(s for s in _SEEDS if _takes(cls, s))
    k = getattr(keras.metrics, cls)(**_REQUIRED.get(cls, {}))
    try:
        k.update_state(*(np.asarray(a) for a in seed))
        k.update_state(np.asarray(INPUTS[tn]), np.asarray(INPUTS[pn]))
        value = np.asarray(k.result())
    except Exception:
        return False
    del m
    return bool(np.isfinite(value).all())


def _takes(cls, seed):
    m = getattr(tkm, cls)(**_REQUIRED.get(cls, {}))
    try:
        m.update_state(*seed)
    except (TypeError, ValueError):
        return False
    return bool(torch.isfinite(m.result()).all())


def test_a_zero_d_update_under_forced_compilation_gives_the_eager_value():
    from torch_keras_metrics.functional import compile_mode

    eager = tkm.Accuracy()(torch.tensor(1.0), torch.tensor(1.0))
    with compile_mode("always"):
        compiled = tkm.Accuracy()(torch.tensor(1.0), torch.tensor(1.0))
    assert float(eager) == float(compiled) == 1.0


def test_predict_names_bad_inputs_and_changes_nothing():
    trainer = _trainer()
    trainer.fit(X, Y, batch_size=16, verbose=0)
    before = _snapshot(trainer)
    for bad, match in [("abc", "`x`"), (np.array([object()] * 4), "`x`"), ([[1, 2], [3]], "`x`")]:
        with pytest.raises((TypeError, ValueError), match=match):
            trainer.predict(bad, verbose=0)
    with pytest.raises(ValueError, match="`batch_size`"):
        trainer.predict(X, batch_size=0, verbose=0)
    _assert_unchanged(before, _snapshot(trainer), "predict")
