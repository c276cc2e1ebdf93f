"""A small PyTorch MLP on scikit-learn's digits, for darkfab's code-edit proposer.

darkfab calls ``train(X, y, X_valid, params, report)`` with preprocessed float matrices and the class index
of each training row; it never sees validation labels. The blocks between ``# darkfab: editable NAME`` and
``# darkfab: end NAME`` are the only text an LLM may change (`search.proposer: llm_code`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


# darkfab: editable model
def build_model(n_features: int, n_classes: int, hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(n_features, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_classes),
    )


# darkfab: end model


# darkfab: editable loss
def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits, target)


# darkfab: end loss


class Classifier:
    """What darkfab keeps: the network, and predict_proba on preprocessed rows."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self.net.eval()
        with torch.no_grad():
            logits = self.net(torch.as_tensor(X, dtype=torch.float32))
        return torch.softmax(logits, dim=1).numpy()


def train(X, y, X_valid, params, report):
    torch.manual_seed(int(params["seed"]))
    torch.set_num_threads(int(params.get("threads", 1)))
    net = build_model(X.shape[1], int(params["n_classes"]), int(params.get("hidden", 64)))
    opt = torch.optim.Adam(net.parameters(), lr=float(params.get("lr", 1e-2)))
    Xt = torch.as_tensor(X, dtype=torch.float32)
    yt = torch.as_tensor(np.array(y), dtype=torch.long)
    model = Classifier(net)
    epochs = int(params.get("epochs", 30))
    for epoch in range(1, epochs + 1):
        net.train()
        for idx in torch.randperm(len(Xt)).split(64):
            opt.zero_grad()
            loss = loss_fn(net(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        if epoch % 10 == 0 and epoch < epochs and report(epoch, model.predict_proba(X_valid)):
            break
    return model
