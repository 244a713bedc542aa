"""Tests for the PyTorch MLP classifier (models.torch_mlp)."""

import copy

import numpy as np
import pytest
import skops.io as sio
import torch
from sklearn.base import clone
from sklearn.datasets import make_blobs, make_classification, make_moons
from sklearn.metrics import accuracy_score, recall_score
from sklearn.model_selection import train_test_split
from sklearn.utils.estimator_checks import check_estimator

from models.torch_mlp import TorchMLPClassifier

TYPE_NAME = "models.torch_mlp.TorchMLPClassifier"
FAST_PARAMS = {"learning_rate": 1e-2, "batch_size": 64, "max_epochs": 20}


@pytest.fixture(scope="module")
def moons() -> tuple[np.ndarray, ...]:
    X, y = make_moons(n_samples=1500, noise=0.2, random_state=0)
    return tuple(train_test_split(X, y, test_size=500, random_state=0))


@pytest.fixture(scope="module")
def fitted(moons) -> TorchMLPClassifier:
    X_train, _, y_train, _ = moons
    return TorchMLPClassifier(**FAST_PARAMS).fit(X_train, y_train)


def test_check_estimator() -> None:
    # Small batches and a high learning rate let 5 epochs pass check_classifiers_train; one
    # narrow layer keeps matmuls single-threaded (fast even on a busy 2-core machine).
    # on_skip=None: the only skip is check_array_api_input (needs SCIPY_ARRAY_API set).
    clf = TorchMLPClassifier(hidden_units=(16,), batch_size=32, learning_rate=3e-2, max_epochs=5)
    check_estimator(clf, on_skip=None)


@pytest.mark.model
def test_learns_nonlinear_boundary(moons, fitted) -> None:
    _, X_test, _, y_test = moons
    assert accuracy_score(y_test, fitted.predict(X_test)) > 0.9


@pytest.mark.model
def test_multiclass_with_string_labels() -> None:
    X, y = make_blobs(n_samples=600, centers=3, random_state=0)
    labels = np.array(["a", "b", "c"])[y]
    clf = TorchMLPClassifier(**FAST_PARAMS).fit(X, labels)
    proba = clf.predict_proba(X)
    assert proba.shape == (600, 3)
    assert list(clf.classes_) == ["a", "b", "c"]
    assert accuracy_score(labels, clf.predict(X)) > 0.9


def test_fitted_attributes_and_proba(moons, fitted) -> None:
    _, X_test, _, _ = moons
    proba = fitted.predict_proba(X_test)
    assert proba.dtype == np.float64
    assert proba.shape == (len(X_test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(fitted.predict(X_test), proba.argmax(axis=1))
    assert fitted.n_features_in_ == 2
    assert fitted.n_epochs_ == len(fitted.loss_curve_) == FAST_PARAMS["max_epochs"]
    assert fitted.loss_curve_[-1] < fitted.loss_curve_[0]
    assert all(p.device.type == "cpu" for p in fitted.module_.parameters())


@pytest.mark.model
def test_deterministic_and_no_global_rng_leak(moons, fitted) -> None:
    X_train, X_test, y_train, _ = moons
    rng_state = torch.get_rng_state()
    refit = TorchMLPClassifier(**FAST_PARAMS).fit(X_train, y_train)
    assert torch.equal(torch.get_rng_state(), rng_state)
    np.testing.assert_array_equal(refit.predict_proba(X_test), fitted.predict_proba(X_test))
    other_seed = TorchMLPClassifier(**FAST_PARAMS, random_state=1).fit(X_train, y_train)
    assert not np.array_equal(other_seed.predict_proba(X_test), fitted.predict_proba(X_test))


@pytest.mark.model
def test_balanced_class_weight_raises_minority_recall() -> None:
    X, y = make_classification(
        n_samples=4000,
        n_features=8,
        n_informative=4,
        weights=[0.97],
        class_sep=0.8,
        flip_y=0,
        random_state=0,
    )
    X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)

    def recall(class_weight: str | None) -> float:
        clf = TorchMLPClassifier(
            learning_rate=1e-2, batch_size=128, max_epochs=10, class_weight=class_weight
        )
        return recall_score(y_test, clf.fit(X_train, y_train).predict(X_test))

    assert recall("balanced") > recall(None) + 0.2


def test_epoch_callback_sees_usable_estimator_each_epoch(moons) -> None:
    X_train, X_test, y_train, _ = moons
    seen = []

    def callback(epoch: int, estimator: TorchMLPClassifier) -> None:
        seen.append((epoch, estimator.n_epochs_, estimator.predict_proba(X_test).shape))

    TorchMLPClassifier(max_epochs=3).fit(X_train, y_train, epoch_callback=callback)
    assert seen == [(epoch, epoch + 1, (len(X_test), 2)) for epoch in range(3)]


def test_epoch_callback_exception_stops_training(moons) -> None:
    X_train, _, y_train, _ = moons

    class Pruned(Exception):
        pass

    def callback(epoch: int, estimator: TorchMLPClassifier) -> None:
        if epoch == 1:
            raise Pruned

    clf = TorchMLPClassifier(max_epochs=10)
    with pytest.raises(Pruned):
        clf.fit(X_train, y_train, epoch_callback=callback)
    assert clf.n_epochs_ == 2


def test_skops_round_trip_trusts_no_torch_type(moons, fitted) -> None:
    _, X_test, _, _ = moons
    data = sio.dumps(fitted)
    assert sio.get_untrusted_types(data=data) == [TYPE_NAME]
    loaded = sio.loads(data, trusted=[TYPE_NAME])
    np.testing.assert_array_equal(loaded.predict_proba(X_test), fitted.predict_proba(X_test))
    assert not loaded.module_.training


def test_deepcopy_and_clone(moons, fitted) -> None:
    _, X_test, _, _ = moons
    copied = copy.deepcopy(fitted)
    assert copied.module_ is not fitted.module_
    np.testing.assert_array_equal(copied.predict_proba(X_test), fitted.predict_proba(X_test))
    cloned = clone(fitted)
    assert cloned.get_params() == fitted.get_params()
    assert not hasattr(cloned, "module_")


@pytest.mark.parametrize(
    ("device", "match"), [("cuda", "CUDA is not available"), ("tpu", "device must be")]
)
def test_unusable_device_raises(monkeypatch, moons, device: str, match: str) -> None:
    X_train, _, y_train, _ = moons
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=match):
        TorchMLPClassifier(device=device, max_epochs=1).fit(X_train, y_train)


def test_auto_device_trains_on_cpu_without_cuda(monkeypatch, moons) -> None:
    X_train, _, y_train, _ = moons
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    devices = []

    def callback(epoch: int, estimator: TorchMLPClassifier) -> None:
        devices.append(next(estimator.module_.parameters()).device.type)

    TorchMLPClassifier(device="auto", max_epochs=1).fit(X_train, y_train, epoch_callback=callback)
    assert devices == ["cpu"]
