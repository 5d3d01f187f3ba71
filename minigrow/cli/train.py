"""``python -m minigrow train``: train an MLP or residual MLP on spirals, MNIST or Fashion-MNIST."""
from __future__ import annotations

import numpy as np

from ..io import save
from ..network import mlp, residual_mlp
from ..optim import SGD, Adam, StepLR
from ..train import Trainer
from .common import (add_data_args, add_run_args, int_list, load_data, nonneg_int, positive_float, positive_int,
                     write_json)


def register(sub):
    p = sub.add_parser("train", help="train an MLP or residual MLP",
                       description="Train an MLP or residual MLP; writes history.json, model.npz and plots.")
    add_data_args(p)
    p.add_argument("--arch", choices=["mlp", "resnet"], default="mlp")
    p.add_argument("--hidden", type=int_list, default=[20, 20],
                   help="hidden widths, e.g. 300,100 (mlp); for resnet WIDTH,BLOCKS")
    p.add_argument("--activation", choices=["relu", "leaky_relu", "tanh", "sigmoid"], default=None,
                   help="default relu (mlp) / tanh (resnet)")
    p.add_argument("--init", choices=["torch", "he", "glorot"], default="torch")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="adam")
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--step-size", type=positive_int, default=None, help="StepLR: epochs between decays")
    p.add_argument("--gamma", type=positive_float, default=0.5, help="StepLR factor")
    p.add_argument("--epochs", type=nonneg_int, default=10)
    p.add_argument("--batch-size", type=nonneg_int, default=128, help="0 = full batch")
    add_run_args(p, "runs/train")
    p.set_defaults(func=run)


def build_model(args, n_in, n_out, dtype):
    if args.arch == "mlp":
        return mlp([n_in, *args.hidden, n_out], activation=args.activation or "relu", init=args.init,
                   rng=args.seed, dtype=dtype)
    if len(args.hidden) != 2:
        raise ValueError(f"--hidden: for --arch resnet give WIDTH,BLOCKS (e.g. 3,2), got {args.hidden}")
    width, blocks = args.hidden
    return residual_mlp(n_in, width, blocks, n_out, activation=args.activation or "tanh", init=args.init,
                        rng=args.seed, dtype=dtype)


def make_optimizer(args):
    if args.optimizer == "sgd":
        return SGD(args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    return Adam(args.lr, weight_decay=args.weight_decay)


def run(args):
    dtype = np.dtype(args.dtype)
    d = load_data(args, dtype)
    n_out = int(max(d.y_train.max(), d.y_test.max())) + 1
    model = build_model(args, d.X_train.shape[1], n_out, dtype)
    opt = make_optimizer(args)
    sched = StepLR(opt, args.step_size, args.gamma) if args.step_size else None
    trainer = Trainer(model, "ce", opt, batch_size=args.batch_size or None, rng=np.random.default_rng(args.seed),
                      scheduler=sched, progress=not args.no_progress, dtype=dtype)
    trainer.fit(d.X_train, d.y_train, args.epochs, d.X_test, d.y_test)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "history.json", trainer.history.as_dict())
    save(out / "model.npz", model, optimizer=opt)
    last = trainer.history.epochs[-1] if trainer.history.epochs else {}
    print(model.summary())
    if last:
        print(f"final: train loss {last['train_loss']:.4f}, test accuracy {last.get('test_acc', float('nan')):.4f}"
              f" after {last['epoch']} epochs")
    if not args.no_plots:
        from ..plotting import plot_history
        plot_history(trainer.history, out / "history.png", title=f"{args.arch} on {args.data}")
    print(f"wrote {out}/history.json, model.npz" + ("" if args.no_plots else ", history.png"))
    return 0
