"""``flowgan classifier train|info`` and ``flowgan score``: a plugin of :mod:`flowgan.cli`.

Nothing heavy is imported here at import time (torch is imported inside the commands), so that
``flowgan --help`` stays fast.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..atomic import write_text
from ..options import classifier, dataset, device, integer, names, number, seed
from .registry import SCORES


def register(sub) -> None:
    """Add the ``classifier`` and ``score`` subcommands to the ``flowgan`` parser."""
    p = sub.add_parser(
        "classifier",
        help="train or inspect the classifiers behind the IS/MODE/FID/KID scores",
        description="The classifiers that the sample scores use (flowgan's own, offline; or Inception-v3).",
    )
    csub = p.add_subparsers(dest="classifier_command", metavar="SUBCOMMAND", parser_class=sub._parser_class)
    csub.required = True

    t = csub.add_parser(
        "train",
        help="train the classifier of a dataset and save it where the scores find it",
        description=(
            "Train a small CNN (grey-scale data) or ResNet (colour data) on a dataset's training split and save it, "
            "with its test accuracy, to the classifier cache ($FLOWGAN_CACHE/classifiers/<dataset>.pt, else "
            "~/.cache/flowgan/classifiers/<dataset>.pt) or to --out. Scores use it only when named: "
            "--classifier <dataset>."
        ),
    )
    t.add_argument(
        "--dataset",
        type=dataset,
        required=True,
        help="mnist, mnist5k, fashion-mnist, cifar10, digits, or a path to a .npz with labels",
    )
    t.add_argument("--data-dir", help="folder with the dataset files (default $FLOWGAN_DATA or ~/.cache/flowgan/data)")
    t.add_argument(
        "--epochs",
        type=integer(1),
        help="passes over the training split (default by dataset: mnist 8, mnist5k 40, cifar10 60, ...)",
    )
    t.add_argument("--batch-size", type=integer(1), default=128)
    t.add_argument(
        "--lr",
        type=number(0, low_open=True),
        default=2e-3,
        help="peak learning rate (AdamW, one-cycle schedule; default 2e-3)",
    )
    t.add_argument("--out", metavar="PATH", help="classifier file to write (default: the cache, <dataset>.pt)")
    t.add_argument("--device", type=device, default="auto", help="auto (default), cpu, cuda, ...")
    t.add_argument("--seed", type=seed, default=0)
    t.add_argument(
        "--augment", choices=["standard", "flow", "flow-logit"], default="standard",
        help="standard: dequantization and shifts (flips for colour); flow: also the flow-like pixel noise of the "
        "shipped noise-robust MNIST classifier (Gaussian, salt-and-pepper, logit-space, blur); flow-logit: the same "
        "with logit-space noise half the time (tried for colour images; flowgan/metrics/weights/README.md)",
    )  # fmt: skip
    t.add_argument(
        "--consistency", type=number(0), default=0.0, metavar="ALPHA",
        help="stability training (needs --augment flow or flow-logit): each batch seen clean and noisy, loss "
        "+ ALPHA * KL(p(y|clean) || p(y|noisy)); twice the compute per epoch (default 0: off)",
    )  # fmt: skip
    t.add_argument(
        "--teacher", action="append", default=[], metavar="NAME|PATH",
        help="distil from this classifier of the same dataset (repeat for an ensemble: their softmaxes are "
        "averaged); the teachers read the clean image, the student the noisy one",
    )  # fmt: skip
    t.add_argument(
        "--distill", type=number(0, low_open=True), metavar="BETA",
        help="with --teacher: loss (1-BETA)*CE + BETA*KL(teachers || student), BETA in (0, 1] (default 0.5)",
    )  # fmt: skip
    t.add_argument("--width", type=integer(1), help="channels of the first conv block (default 16)")
    t.set_defaults(func=_cmd_classifier_train)

    i = csub.add_parser(
        "info",
        help="show which classifier scores a dataset (or what a classifier file holds)",
        description="Print, as JSON, the classifier the scores would use for --dataset (the shipped default unless "
        "--classifier names one).",
    )
    i.add_argument("--dataset", type=dataset, help="dataset name or .npz path")
    i.add_argument(
        "--classifier",
        type=classifier,
        help="a classifier name (see `flowgan classifier list`) or file (flowgan format or TorchScript)",
    )
    i.set_defaults(func=_cmd_classifier_info)

    ls = csub.add_parser(
        "list",
        help="the shipped and cached classifiers, with what they were trained on",
        description="List the shipped classifiers (and which dataset family each is the default of) and those in the "
        "cache, as JSON.",
    )
    ls.set_defaults(func=_cmd_classifier_list)

    c = csub.add_parser(
        "check",
        help="accuracy, IS and MODE of a classifier on a split's real images under pixel noise",
        description=(
            "Score the real images of a split clean and with fixed, reproducible pixel noise (Gaussian sigma 0.15 and "
            "0.30, 15%% salt-and-pepper, logit-space, blur; in [0, 1], clipped, re-quantised to 8 bits): accuracy, "
            "Inception score and MODE of each. A classifier for flow samples must still see the digit under such "
            "noise."
        ),
    )
    c.add_argument("--dataset", type=dataset, required=True, help="mnist, mnist5k, cifar10, a .npz with labels, ...")
    c.add_argument("--data-dir")
    c.add_argument("--split", default="test", choices=["train", "val", "test"])
    c.add_argument(
        "--classifier",
        type=classifier,
        help="default: the dataset's shipped classifier; or a name from `flowgan classifier list`, or a file",
    )
    c.add_argument(
        "--samples", type=integer(20), help="a fixed random subset of N >= 20 images (10 splits; default all)"
    )
    c.add_argument("--device", type=device, default="auto")
    c.add_argument("--output", "-o", help="also write the JSON to this file")
    c.set_defaults(func=_cmd_classifier_check)

    s = sub.add_parser(
        "score",
        help="IS/MODE/FID/KID of a dataset's real images (the reference for a model's samples)",
        description=(
            "Score real images of a split exactly as `flowgan evaluate --metrics ...` scores a model's samples. "
            "Images are dequantized as the likelihood sees them, (k + u)/256 with the fixed evaluation noise. FID/KID "
            "compare them with --reference-split (default test, or val when scoring the test split)."
        ),
    )
    s.add_argument(
        "--dataset",
        type=dataset,
        required=True,
        help="mnist, mnist5k, fashion-mnist, cifar10, digits, or a path to a .npz",
    )
    s.add_argument("--split", default="test", choices=["train", "val", "test"], help="images to score (default test)")
    s.add_argument(
        "--reference-split",
        choices=["train", "val", "test"],
        help="FID/KID reference (default test; val when --split test)",
    )
    s.add_argument("--data-dir")
    s.add_argument(
        "--metrics",
        type=names(SCORES, what="score"),
        default=list(SCORES),
        help=f"comma-separated: {','.join(SCORES)} (default all)",
    )
    s.add_argument(
        "--samples", type=integer(2), help="score a fixed random subset of N images of the split (default all)"
    )
    s.add_argument(
        "--classifier",
        type=classifier,
        help="default: the shipped classifier of the dataset (mnist-robust, cifar10-distilled); or a name from "
        "`flowgan classifier list` (mnist-clean, a cached one such as mnist5k), a classifier file (flowgan format or "
        "TorchScript), or 'inception'",
    )
    s.add_argument("--device", type=device, default="auto")
    s.add_argument("--output", "-o", help="also write the JSON to this file")
    s.set_defaults(func=_cmd_score)


def _cmd_classifier_train(args) -> int:
    import torch

    from ..cli import err
    from ..data import load_dataset
    from ..runtime import resolve_device
    from .classifier_training import train_classifier
    from .classifiers import (
        SHIPPED_CLASSIFIERS,
        cache_name,
        classifier_family,
        default_classifier_dir,
        resolve_classifier,
        save_classifier,
    )

    device = resolve_device(args.device)
    dataset = load_dataset(args.dataset, args.data_dir)
    family = classifier_family(dataset)
    name = cache_name(dataset)
    out = Path(args.out) if args.out else default_classifier_dir() / f"{name}.pt"
    err(
        f"flowgan: training the {family} classifier on {dataset.describe()} ({torch.get_num_threads()} threads, "
        f"{device})"
    )
    options = {"width": args.width} if args.width else None
    teachers = [resolve_classifier(t) for t in args.teacher]
    clf, meta = train_classifier(
        dataset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=device,
        arch_options=options, augment=args.augment, consistency=args.consistency, teachers=teachers,
        distill=args.distill, log=err,
    )  # fmt: skip
    save_classifier(out, clf, meta)
    if meta.get("test_images"):  # the card states how it reads noisy images too
        from .noise import check_classifier, noise_card

        meta["noise_check"] = noise_card(check_classifier(dataset, str(out), split="test", device=device))
        save_classifier(out, clf, meta)
        rows = [r for r in meta["noise_check"]["rows"] if "accuracy" in r]
        err(
            "flowgan: test accuracy under noise: " + "; ".join(f"{r['noise']} {100 * r['accuracy']:.1f}%" for r in rows)
        )
    acc = meta["test_accuracy"]
    print(
        json.dumps(
            {
                "path": str(out),
                **{
                    k: meta[k]
                    for k in (
                        "family",
                        "trained_on",
                        "test_accuracy",
                        "test_images",
                        "val_accuracy",
                        "epochs",
                        "train_seconds",
                    )
                },
            },
            indent=2,
        )
    )
    err(
        f"flowgan: wrote {out} (test accuracy {100 * acc:.2f}% on {meta['test_images']} {dataset.name} test images)"
        if acc is not None
        else f"flowgan: wrote {out}"
    )
    if not args.out:
        use = f"cache:{name}" if name in SHIPPED_CLASSIFIERS else name
        err(f"flowgan: scores use it only when named: --classifier {use} (the default stays the shipped classifier)")
    return 0


def _cmd_classifier_check(args) -> int:
    from ..cli import err
    from ..data import load_dataset
    from ..runtime import resolve_device
    from .noise import check_classifier

    dataset = load_dataset(args.dataset, args.data_dir)
    t = time.perf_counter()
    result = check_classifier(
        dataset, args.classifier, split=args.split, n_images=args.samples, device=resolve_device(args.device)
    )
    result["check_seconds"] = round(time.perf_counter() - t, 1)
    text = json.dumps(result, indent=2)
    print(text)
    err(f"flowgan: {result['classifier']}; {result['images']} {dataset.name} {args.split} images")
    err(f"  {'noise':<22} {'accuracy':>9} {'IS':>13} {'MODE':>13}")
    for r in result["rows"]:
        acc = f"{100 * r['accuracy']:.2f}%" if "accuracy" in r else "—"
        mode = f"{r['mode']:.2f} ± {r['mode_std']:.2f}" if "mode" in r else "—"
        err(f"  {r['noise']:<22} {acc:>9} {r['is']:>6.2f} ± {r['is_std']:.2f} {mode:>13}")
    if args.output:
        out = write_text(args.output, text + "\n")
        err(f"flowgan: wrote {out}")
    return 0


def _cmd_classifier_list(args) -> int:
    from .classifiers import list_classifiers

    print(json.dumps(list_classifiers(), indent=2, default=str))
    return 0


def _cmd_classifier_info(args) -> int:
    from ..cli import UsageError
    from .classifiers import classifier_family, find_classifier

    if not args.dataset and not args.classifier:
        raise UsageError("give --dataset or --classifier")
    if args.classifier:
        clf = find_classifier(args.dataset or "?", args.classifier)
    else:
        clf = find_classifier(args.dataset)
    info = {
        "family": classifier_family(args.dataset) if args.dataset else None,
        "source": clf.source,
        "path": clf.path,
        "name": clf.name,
        **clf.summary(),
    }
    info.update(
        {k: v for k, v in clf.info.items() if k not in ("history", "normalization", "format", "version", "name")}
    )
    print(json.dumps(info, indent=2, default=str))
    return 0


def _cmd_score(args) -> int:
    from ..cli import err
    from ..data import load_dataset
    from ..runtime import resolve_device
    from . import score_split

    scores = args.metrics
    device = resolve_device(args.device)
    dataset = load_dataset(args.dataset, args.data_dir)
    reference = args.reference_split or ("val" if args.split == "test" else "test")
    t = time.perf_counter()
    result = score_split(
        dataset,
        args.split,
        scores,
        n_images=args.samples,
        classifier=args.classifier,
        device=device,
        reference_split=reference,
    )
    result["score_seconds"] = round(time.perf_counter() - t, 2)
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        out = write_text(args.output, text + "\n")
        err(f"flowgan: wrote {out}")
    return 0
