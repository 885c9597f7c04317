"""`python -m backprop_lab.reference`: the lesson end to end on the bundled data, checked
against autograd.

Loads the data (scikit-learn's digits unless --data-path names the course's MNIST
pickle), normalises it and initialises the MLP as the lesson does, runs the hand-written
backward pass (functions and classes), compares every gradient with torch autograd, and
times the matmul ladder. Then the classifier: its cross-entropy backward pass against
autograd, and a few epochs of training with it (a table of loss and accuracy per epoch).
Exit code 1 if any gradient disagrees.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
import timeit

import torch
import torch.nn.functional as F

from backprop_lab import coursedata

from . import LADDER, Classifier, Model, fit, forward_and_backward, init_params

# fit's defaults, printed in the table's heading
LR, EPOCHS, BS = 0.5, 10, 32


def _grad(t: torch.Tensor) -> torch.Tensor:
    """The gradient the hand-written pass left on `t`: the lesson's `.g`, an attribute
    torch's Tensor does not declare."""
    return t.g  # type: ignore[attr-defined]


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.double() - want.double()).norm() / want.double().norm().clamp_min(1e-300)).item()


def main(argv: list[str] | None = None) -> int:
    summary = " ".join(__doc__.split("\n\n")[0].split())
    parser = argparse.ArgumentParser(prog="python -m backprop_lab.reference", description=summary)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-path", default=None, help="the course's mnist.pkl.gz (optional)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda was asked for, but torch sees no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)

    data = coursedata.get_data(args.data_path)
    x_train, y_train, x_valid, y_valid = data
    mean, std = x_train.mean(), x_train.std()
    x_train = ((x_train - mean) / std).to(dev)
    y_train = y_train.float().to(dev)
    m = x_train.shape[1]
    nh = 50
    # Kaiming init for the relu layer, 1/sqrt(fan_in) for the linear output.
    w1 = (torch.randn(m, nh) * math.sqrt(2 / m)).to(dev)
    b1 = torch.zeros(nh, device=dev)
    w2 = (torch.randn(nh, 1) / math.sqrt(nh)).to(dev)
    b2 = torch.zeros(1, device=dev)
    print(
        f"data: {data.source}; x_train {tuple(x_train.shape)}, "
        f"mean {x_train.mean().item():.3f}, std {x_train.std().item():.3f}; device {dev}"
    )

    params = [w1, b1, w2, b2]
    loss = forward_and_backward(x_train, y_train, *params)
    named = {"x": x_train, "w1": w1, "b1": b1, "w2": w2, "b2": b2}
    by_hand = {name: _grad(t) for name, t in named.items()}
    model = Model(*params)
    model(x_train, y_train)
    model.backward()
    by_class = {name: _grad(t) for name, t in named.items()}

    leaves = [t.detach().clone().requires_grad_() for t in (x_train, *params)]
    xa, w1a, b1a, w2a, b2a = leaves
    out = (xa @ w1a + b1a).clamp_min(0.0) @ w2a + b2a
    ((out[:, 0] - y_train).pow(2).mean()).backward()
    autograd = dict(zip(by_hand, (t.grad for t in leaves), strict=True))

    print(f"loss {loss.item():.4f}\n")
    print(f"{'gradient':<9}{'shape':>12}{'functions vs autograd':>24}{'classes vs autograd':>22}")
    worst = 0.0
    for name, want in autograd.items():
        e1, e2 = _rel_err(by_hand[name], want), _rel_err(by_class[name], want)
        worst = max(worst, e1, e2)
        print(f"{name:<9}{tuple(want.shape)!s:>12}{e1:>24.1e}{e2:>22.1e}")
    # float32 rounding over sums of ~1e3 terms stays below 1e-5 norm-relative; a real
    # mistake (a factor of 2, a transpose, a missing mask) is >= 0.3.
    ok = worst < 1e-5
    verdict = "agrees with" if ok else "DIFFERS from"
    print(f"\nworst norm-relative error {worst:.1e}: {verdict} autograd")

    a, b = x_valid[:5].to(dev), torch.randn(m, 10, device=dev)
    print(f"\nmatmul ladder on {tuple(a.shape)} @ {tuple(b.shape)}:")
    base = None
    for rung, f in LADDER.items():
        number = 3 if rung in ("loops", "elementwise") else 200
        t = min(timeit.repeat(functools.partial(f, a, b), number=number, repeat=3)) / number
        base = base or t
        print(f"  {rung:<12}{t * 1e6:>12.1f} us   {base / t:>8.0f}x faster than loops")

    # The classifier: the same MLP with one output per class and cross-entropy. The
    # validation set is normalised with the training set's statistics, as the lesson does.
    x_valid = ((x_valid - mean) / std).to(dev)
    labels, labels_valid = data.y_train.to(dev), y_valid.to(dev)
    n_classes = int(data.y_train.max().item()) + 1
    gen = torch.Generator().manual_seed(args.seed)
    cparams = init_params(m, nh, n_classes, gen, device=dev)
    ce_ok = _check_classifier(x_train, labels, cparams)
    _train(cparams, x_train, labels, x_valid, labels_valid)
    return 0 if ok and ce_ok else 1


def _check_classifier(
    x: torch.Tensor, labels: torch.Tensor, params: tuple[torch.Tensor, ...]
) -> bool:
    """The classifier's hand-written backward pass (logits and every parameter) against
    autograd of torch's own cross-entropy, printed as a table; True if they agree."""
    model = Classifier(*params)
    loss = model(x, labels)
    model.backward()
    logits = model.loss.inp
    by_hand = {"logits": _grad(logits)} | {
        name: _grad(t) for name, t in zip(("w1", "b1", "w2", "b2"), params, strict=True)
    }
    leaves = [t.detach().clone().requires_grad_() for t in (x, *params)]
    xa, w1a, b1a, w2a, b2a = leaves
    logits_a = (xa @ w1a + b1a).clamp_min(0.0) @ w2a + b2a
    logits_a.retain_grad()
    F.cross_entropy(logits_a, labels).backward()
    autograd = dict(zip(by_hand, (logits_a.grad, *(t.grad for t in leaves[1:])), strict=True))

    print(f"\nclassifier: cross-entropy loss {loss.item():.4f} at initialisation\n")
    print(f"{'gradient':<9}{'shape':>12}{'by hand vs autograd':>22}")
    worst = 0.0
    for name, want in autograd.items():
        assert want is not None  # every leaf, and the retained logits, reach the loss
        e = _rel_err(by_hand[name], want)
        worst = max(worst, e)
        print(f"{name:<9}{tuple(want.shape)!s:>12}{e:>22.1e}")
    ok = worst < 1e-5  # the same margin as the regression model's check above
    verdict = "agrees with" if ok else "DIFFERS from"
    print(f"\nworst norm-relative error {worst:.1e}: cross-entropy {verdict} autograd")
    return ok


def _train(
    params: tuple[torch.Tensor, ...],
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_valid: torch.Tensor,
    y_valid: torch.Tensor,
) -> None:
    """`fit` with its defaults (the parameters are trained in place), and the table."""
    # One thread for matrices this small (batches of 32 x 64 @ 64 x 50): measured on two
    # busy cores, torch's default of a thread per core made fit 15-25x slower (2-3.6 s,
    # not 0.14 s) waiting for the other thread. Restored after: main() also runs in tests.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        history = fit(params, x_train, y_train, x_valid, y_valid, lr=LR, epochs=EPOCHS, bs=BS)
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    steps = math.ceil(len(x_train) / BS)
    print(
        f"\ntraining: {params[0].shape[1]} hidden, lr {LR}, batch {BS} "
        f"({steps} steps an epoch), hand-written backward pass, plain SGD"
    )
    print(f"{'epoch':>7}{'train loss':>12}{'valid loss':>12}{'valid accuracy':>16}")
    for epoch, (train, valid, acc) in enumerate(history, 1):
        print(f"{epoch:>7}{train:>12.4f}{valid:>12.4f}{acc:>16.1%}")
    print(f"trained in {seconds:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
