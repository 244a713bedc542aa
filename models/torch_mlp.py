"""PyTorch tabular MLP classifier with the scikit-learn estimator contract.

The fitted network is persisted as numpy arrays (see ``__getstate__``), so a fitted
estimator round-trips through ``skops.io`` without trusting any torch type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

EpochCallback = Callable[[int, "TorchMLPClassifier"], None]

_MODULE_STATE_KEY = "module_state_"


@contextmanager
def _seeded_torch(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG for ``device`` and restore the previous state on exit."""
    cuda_devices = [torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        yield


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier for dense tabular data, trained with PyTorch.

    Binary problems use one logit and BCE-with-logits; more classes use softmax and
    cross-entropy. Training uses AdamW on shuffled mini-batches and is deterministic
    for a given ``random_state`` on a given device.

    Args:
        hidden_units: Width of each hidden layer (Linear -> ReLU -> Dropout).
        dropout: Dropout probability after each hidden layer.
        learning_rate: AdamW learning rate.
        weight_decay: AdamW decoupled weight decay.
        batch_size: Mini-batch size for training and inference.
        max_epochs: Number of passes over the training data.
        class_weight: None, "balanced" (weights inversely proportional to class
            frequency) or a dict mapping class label to loss weight.
        random_state: Seed (int, None or ``numpy.random.RandomState``) for weight
            initialisation, dropout and shuffling.
        device: "auto" (CUDA when available, else CPU), "cpu" or "cuda".

    Attributes:
        classes_: Sorted class labels seen in ``fit``.
        n_features_in_: Number of features seen in ``fit``.
        module_: The fitted ``torch.nn.Module``, on CPU after ``fit``.
        n_epochs_: Number of completed training epochs.
        loss_curve_: Mean (weighted) training loss of each completed epoch.
    """

    def __init__(
        self,
        hidden_units: tuple[int, ...] = (64, 32),
        dropout: float = 0.1,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        batch_size: int = 512,
        max_epochs: int = 20,
        class_weight: str | dict[Any, float] | None = None,
        random_state: int | np.random.RandomState | None = 0,
        device: str = "auto",
    ) -> None:
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.class_weight = class_weight
        self.random_state = random_state
        self.device = device

    def fit(
        self, X: Any, y: Any, *, epoch_callback: EpochCallback | None = None
    ) -> TorchMLPClassifier:
        """Train the network.

        Args:
            X: Features, array-like of shape (n_samples, n_features).
            y: Class labels, array-like of shape (n_samples,).
            epoch_callback: Called as ``epoch_callback(epoch, self)`` after each epoch
                (``epoch`` counts from 0); ``self`` can already ``predict_proba``.
                Exceptions it raises (e.g. ``optuna.TrialPruned``) stop training and
                propagate.

        Returns:
            The fitted estimator.

        Raises:
            ValueError: If ``y`` has fewer than two classes or ``device`` is unusable.
        """
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes; y has only one class: "
                f"{self.classes_[0]}."
            )
        class_weights = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
        device = self._resolve_device()
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

        X_t = torch.tensor(X, device=device)
        y_t = torch.tensor(y_idx, device=device)
        w_t = torch.tensor(class_weights[y_idx], dtype=torch.float32, device=device)
        shuffle_rng = torch.Generator().manual_seed(seed)
        self.n_epochs_ = 0
        self.loss_curve_: list[float] = []
        with _seeded_torch(seed, device):
            self.module_ = self._build_module().to(device)
            optimizer = torch.optim.AdamW(
                self.module_.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
            )
            try:
                for epoch in range(self.max_epochs):
                    self.loss_curve_.append(
                        self._train_epoch(X_t, y_t, w_t, optimizer, shuffle_rng)
                    )
                    self.n_epochs_ = epoch + 1
                    if epoch_callback is not None:
                        epoch_callback(epoch, self)
            finally:
                self.module_.cpu().eval()
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Predict class probabilities.

        Args:
            X: Features, array-like of shape (n_samples, n_features).

        Returns:
            Float64 array of shape (n_samples, n_classes), columns ordered as ``classes_``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32)
        device = next(self.module_.parameters()).device
        self.module_.eval()
        with torch.inference_mode():
            logits = torch.cat(
                [
                    self.module_(torch.tensor(X[start : start + self.batch_size], device=device))
                    for start in range(0, len(X), self.batch_size)
                ]
            ).to("cpu", torch.float64)
        if logits.shape[1] == 1:
            positive = torch.sigmoid(logits)
            return torch.cat([1.0 - positive, positive], dim=1).numpy()
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Predict class labels.

        Args:
            X: Features, array-like of shape (n_samples, n_features).

        Returns:
            Array of shape (n_samples,) with labels from ``classes_``.
        """
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def __getstate__(self) -> dict[str, Any]:
        """Return picklable state with the torch module replaced by numpy arrays."""
        state = dict(super().__getstate__())
        module = state.pop("module_", None)
        if module is not None:
            state[_MODULE_STATE_KEY] = {
                name: tensor.detach().cpu().numpy().copy()
                for name, tensor in module.state_dict().items()
            }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore state, rebuilding the torch module on CPU from numpy arrays."""
        state = dict(state)
        module_state = state.pop(_MODULE_STATE_KEY, None)
        super().__setstate__(state)
        if module_state is not None:
            with torch.device("meta"):
                module = self._build_module()
            module.load_state_dict(
                {name: torch.tensor(array) for name, array in module_state.items()}, assign=True
            )
            self.module_ = module.eval()

    def _train_epoch(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        weights: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
    ) -> float:
        """Run one epoch of shuffled mini-batch updates; return the mean weighted loss."""
        self.module_.train()
        total = torch.zeros((), device=X.device)
        for idx in torch.randperm(len(X), generator=generator).split(self.batch_size):
            idx = idx.to(X.device)
            loss = (self._loss(self.module_(X[idx]), y[idx]) * weights[idx]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        return total.item() / len(X)

    def _build_module(self) -> nn.Sequential:
        """Build the (unfitted) network for ``n_features_in_`` and ``classes_``."""
        n_classes = len(self.classes_)
        layers: list[nn.Module] = []
        width_in = self.n_features_in_
        for width in self.hidden_units:
            layers += [nn.Linear(width_in, width), nn.ReLU(), nn.Dropout(self.dropout)]
            width_in = width
        layers.append(nn.Linear(width_in, 1 if n_classes == 2 else n_classes))
        return nn.Sequential(*layers)

    @staticmethod
    def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample loss: BCE-with-logits for one logit, cross-entropy otherwise."""
        if logits.shape[1] == 1:
            return nn.functional.binary_cross_entropy_with_logits(
                logits[:, 0], target.to(logits.dtype), reduction="none"
            )
        return nn.functional.cross_entropy(logits, target, reduction="none")

    def _resolve_device(self) -> torch.device:
        """Map the ``device`` parameter to a usable ``torch.device``."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda'; got {self.device!r}.")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' was requested but CUDA is not available.")
        return torch.device(self.device)
