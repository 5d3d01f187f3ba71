"""``python -m minigrow train``: train an MLP, a residual MLP or a conv net on spirals, MNIST or Fashion-MNIST.

``--arch``: ``mlp`` (``--hidden 300,100``), ``resnet`` (the residual MLP of SensLI, ``--hidden WIDTH,BLOCKS``), and
for the image data sets the conv nets of :mod:`minigrow.convnets`: ``lenet5`` (LeNet-5-Caffe 20-50-800-500),
``lenet5-classic`` (6-16-120-84), ``vgg`` and ``conv-resnet`` (``--blocks 1,1,1 --width 8``: blocks per stage and
channels of the first stage; ``resnet`` already names the residual MLP).

``--checkpoint-every N`` writes ``OUT/checkpoints/epoch-NNNN.npz``; ``--resume PATH`` continues such a run up to
``--epochs`` in all, bit-identically to an uninterrupted run (the settings of the run come from the checkpoint).
A diverging run saves the last finite model to ``OUT/model.npz`` and exits with status 3.
"""
from __future__ import annotations

import numpy as np

from ..checkpoint import resume
from ..io import save
from ..convnets import conv_net, lenet5
from ..network import mlp, residual_mlp
from ..optim import SGD, Adam, StepLR
from ..train import Trainer, TrainingDiverged
from .common import (RunFolder, add_checkpoint_args, add_data_args, add_lr_schedule_args, add_run_args, check_memory,
                     given, int_list, load_data, nonneg_float, nonneg_int, positive_float, positive_int, refuse_unused,
                     settings_from_checkpoint, unit_float, write_json)

# The settings that define a run: stored in every checkpoint and taken from it on --resume.
RUN_ARGS = ["data", "n_train", "n_test", "arch", "hidden", "activation", "init", "optimizer", "lr", "momentum",
            "weight_decay", "step_size", "gamma", "batch_size", "seed", "dtype", "blocks", "width"]
DENSE_ARCHS = ("mlp", "resnet")
CONV_ARCHS = ("lenet5", "lenet5-classic", "vgg", "conv-resnet")


def register(sub):
    p = sub.add_parser("train", help="train an MLP, residual MLP or conv net",
                       description="Train an MLP, a residual MLP or a conv net (LeNet-5, VGG, ResNet on 28×28 "
                                   "images); writes history.json, model.npz and plots.")
    add_data_args(p)
    p.add_argument("--arch", choices=[*DENSE_ARCHS, *CONV_ARCHS], default="mlp",
                   help="mlp | resnet (residual MLP) | lenet5 | lenet5-classic | vgg | conv-resnet (image data)")
    p.add_argument("--blocks", type=int_list, default=[1, 1, 1],
                   help="vgg/conv-resnet: conv blocks per stage (stages of width, 2·width, 4·width channels)")
    p.add_argument("--width", type=positive_int, default=8, help="vgg/conv-resnet: channels of the first stage")
    p.add_argument("--hidden", type=int_list, default=[20, 20],
                   help="hidden widths, e.g. 300,100 (mlp); for resnet WIDTH,BLOCKS")
    p.add_argument("--activation", choices=["relu", "leaky_relu", "tanh", "sigmoid"], default=None,
                   help="default relu (mlp) / tanh (resnet)")
    p.add_argument("--init", choices=["torch", "he", "glorot"], default="torch")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="adam")
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--momentum", type=unit_float, default=0.0, help="SGD momentum in [0, 1)")
    p.add_argument("--weight-decay", type=nonneg_float, default=0.0)
    add_lr_schedule_args(p, None, 0.5, dest_step="step_size", dest_decay="gamma")
    p.add_argument("--epochs", type=nonneg_int, default=10)
    p.add_argument("--batch-size", type=nonneg_int, default=128, help="0 = full batch")
    add_run_args(p, "runs/train")
    add_checkpoint_args(p)
    p.set_defaults(func=run)


def build_model(args, n_in, n_out, dtype):
    if args.arch in ("lenet5", "lenet5-classic"):
        return lenet5("caffe" if args.arch == "lenet5" else "classic", rng=args.seed, dtype=dtype, init=args.init)
    if args.arch in ("vgg", "conv-resnet"):
        return conv_net(args.blocks, args.width, skip=args.arch == "conv-resnet", n_classes=n_out, in_channels=n_in,
                        init=args.init, rng=args.seed, dtype=dtype)
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


def _settings_from_checkpoint(args):
    """On --resume: the run's settings come from the checkpoint; an explicitly different flag is an error."""
    ck = settings_from_checkpoint(args, "train", RUN_ARGS)
    if args.epochs < ck["checkpoint"]["epoch"]:
        raise ValueError(f"--epochs: the checkpoint has already trained {ck['checkpoint']['epoch']} epochs, got "
                         f"--epochs {args.epochs} (the total to reach)")
    return ck["path"]


def check_flags(args):
    """Flags that have no effect with the chosen settings are refused (not silently ignored)."""
    if args.optimizer != "sgd":
        refuse_unused(args, ["momentum"], f"with --optimizer {args.optimizer} (SGD momentum only)")
    if not args.step_size and given(args, "gamma"):
        raise ValueError("--lr-decay (old name --gamma): has no effect without --lr-step (old name --step-size); "
                         "it is the StepLR factor; drop it")
    if args.arch in CONV_ARCHS:
        if args.data == "spirals":
            raise ValueError(f"--arch {args.arch}: a conv net needs image data (--data mnist or fashion)")
        refuse_unused(args, ["hidden", "activation"], f"with --arch {args.arch} (a conv net of fixed layout, ReLU)")
    if args.arch not in ("vgg", "conv-resnet"):
        refuse_unused(args, ["blocks", "width"], f"with --arch {args.arch} (vgg and conv-resnet only)")


def run(args):
    resume_path = _settings_from_checkpoint(args) if args.resume is not None else None
    check_flags(args)
    dtype = np.dtype(args.dtype)
    files = ["history.json", "model.npz"] + ([] if args.no_plots else ["history.png"])
    with RunFolder(args.out, "train", files, checkpoints=resume_path or "new") as rf:
        d = load_data(args, dtype)
        n_out = int(max(d.y_train.max(), d.y_test.max())) + 1
        if args.arch == "mlp":
            check_memory(args, [d.X_train.shape[1], *args.hidden, n_out], d, dtype)
        if args.arch in CONV_ARCHS:                                  # NCHW images, batch first
            side = int(round(np.sqrt(d.X_train.shape[1])))
            d["X_train"], d["X_test"] = (d[k].reshape(-1, 1, side, side) for k in ("X_train", "X_test"))
        ckdir = args.out / "checkpoints" if args.checkpoint_every else None
        if resume_path is None:
            model = build_model(args, d.X_train.shape[1], n_out, dtype)
            opt = make_optimizer(args)
            sched = StepLR(opt, args.step_size, args.gamma) if args.step_size else None
            trainer = Trainer(model, "ce", opt, batch_size=args.batch_size or None,
                              rng=np.random.default_rng(args.seed), scheduler=sched,
                              progress=not args.no_progress, dtype=dtype, checkpoint_dir=ckdir,
                              checkpoint_every=max(args.checkpoint_every, 1))
        else:
            trainer = resume(resume_path, progress=not args.no_progress)
            trainer.checkpoint_dir, trainer.checkpoint_every = ckdir, max(args.checkpoint_every, 1)
            print(f"resumed {resume_path} at epoch {trainer.epoch}")
        model, opt = trainer.model, trainer.optimizer
        # what --resume needs to rebuild the data and to check the flags
        trainer.checkpoint_meta = {"command": "train", "args": {k: getattr(args, k) for k in RUN_ARGS}}
        out = args.out
        try:
            trainer.fit(d.X_train, d.y_train, args.epochs - trainer.epoch, d.X_test, d.y_test)
        except TrainingDiverged as exc:
            write_json(rf.stage("history.json"), trainer.history.as_dict())
            save(rf.stage("model.npz"), model, optimizer=opt)          # the last finite state
            rf.commit(status="diverged", info={"error": str(exc)})
            print(f"wrote the last finite model to {out}/model.npz and history.json", flush=True)
            raise
        write_json(rf.stage("history.json"), trainer.history.as_dict())
        save(rf.stage("model.npz"), model, optimizer=opt)
        last = trainer.history.epochs[-1] if trainer.history.epochs else {}
        print(model.summary())
        if last:
            print(f"final: train loss {last['train_loss']:.4f}, test accuracy "
                  f"{last.get('test_acc', float('nan')):.4f} after {last['epoch']} epochs")
        if not args.no_plots:
            from ..plotting import plot_history
            plot_history(trainer.history, rf.stage("history.png"), title=f"{args.arch} on {args.data}")
        rf.commit()
    print(f"wrote {out}/history.json, model.npz" + ("" if args.no_plots else ", history.png") + ", manifest.json")
    return 0
