"""The ``kerasviz`` command line: parses arguments and calls the library, nothing more.

TensorFlow is imported only inside the commands, so ``kerasviz --help`` answers at once.
Bad input ends with a one-line error and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from kerasviz.models import RESIZE  # numpy only: --help stays fast

EXIT_USAGE = 2
EXIT_BAD_IMAGES = 3  # explain --strict: some images could not be read (the rest were explained)


class UsageError(Exception):
    """A problem with what the user asked for: printed as one line, exit code 2."""


def _quiet_tf() -> None:
    from kerasviz._compute import quiet_tensorflow

    quiet_tensorflow()


def _load_model(ref: str):
    """``(model, card)`` for a shipped name, a model file or ``keras.applications.NAME``, or a
    UsageError saying what is wrong (the card checked against the model)."""
    from kerasviz import models

    try:
        model = models.load(ref)
        return model, models.card(ref, model=model)
    except KeyError:
        raise UsageError(
            f"model: no such file or shipped name: {ref} (shipped: "
            f"{', '.join(models.SHIPPED)}; or a .keras/.h5/.hdf5 file, or "
            f"{models.APPLICATIONS_PREFIX}NAME)"
        ) from None
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from None


def _card(ref: str) -> dict:
    """The card of ``ref`` checked on its own (the model is loaded elsewhere)."""
    from kerasviz import models

    try:
        return models.card(ref)
    except KeyError:
        return {}  # not a shipped name: the model loader says what is wrong
    except ValueError as err:
        raise UsageError(str(err)) from None


def _describe_preprocessing(prep) -> str:
    if prep.mode == "tf":
        return "tf (v / 127.5 - 1)"
    if prep.mode == "torch":
        return "torch ((v / 255 - ImageNet mean) / ImageNet std, RGB)"
    if prep.mode == "caffe":
        return "caffe (RGB to BGR, v - ImageNet mean)"
    return f"v * {prep.scale:.6g} + {prep.offset:.6g}"


def describe(model, card: dict | None = None) -> str:
    """What ``kerasviz info`` prints: the model line, the card's classes and preprocessing, the
    layer table (what each layer can be used for) and the default CAM layer."""
    from kerasviz import inspect, models
    from kerasviz._preprocess import Preprocessing

    card = card or {}
    lines = [
        f"model: {model.name}   input: {inspect.input_shape(model)}   "
        f"outputs: {inspect.num_outputs(model)}   params: {model.count_params():,}   "
        f"head: {inspect.head_activation(model) or 'linear'}"
    ]
    names = card.get("class_names")
    if names:
        shown = ", ".join(names) if len(names) <= 12 else ", ".join(names[:5]) + ", ..."
        lines.append(f"classes: {len(names)} ({shown})")
    prep = _describe_preprocessing(Preprocessing.from_card(card))
    if "preprocessing" not in card:
        prep += " (no card entry: the default)"
    extras = [f"preprocessing: {prep}"]
    if card.get("resize"):
        extras.append(f"resize: {card['resize']}")
    size = models.card_size(card)
    if size is not None:
        extras.append(f"input size: {size[0]}x{size[1]}")
    lines.append("   ".join(extras))
    header = ("path", "type", "output shape", "params", "filters", "activ.", "cam")
    table = [header]
    for r in inspect.layer_table(model):
        table.append(
            (
                r.path,
                r.type,
                str(r.output_shape),
                f"{r.params:,}",
                "yes" if r.filters else "",
                "yes" if r.activations else "",
                "yes" if r.cam else "",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    try:
        lines.append(f"default CAM layer: {inspect.last_spatial_layer(model)}")
    except ValueError:
        lines.append("default CAM layer: none (no spatial layer)")
    return "\n".join(lines)


def cmd_info(args) -> int:
    """Print the layer table of a model: what each layer can be used for."""
    if args.model and args.model_option and args.model != args.model_option:
        raise UsageError(
            f"two models given: {args.model} and --model {args.model_option}; give one"
        )
    ref = args.model_option or args.model
    if not ref:
        raise UsageError("no model given: kerasviz info MODEL (or --model MODEL)")
    _quiet_tf()
    model, card = _load_model(ref)
    print(describe(model, card))
    return 0


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _quiet(args) -> bool:
    if args.quiet:
        os.environ["KERASVIZ_QUIET"] = "1"
    return args.quiet


def _fresh_dir(path: Path, force: bool, what: str = "out", ours=None) -> None:
    """Refuse an existing, non-empty folder unless ``--force``, and with it a folder holding
    files that ``ours(relative path)`` does not accept (kerasviz never deletes those)."""
    from kerasviz import _files

    try:
        _files.check_replaceable(path, force, "--force", ours=ours)
    except FileExistsError as err:
        raise UsageError(f"--{what}: {err}") from None


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.lower().replace(" ", "").split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) <= 0:
        raise UsageError(f"--size: expected HxW such as 224x224, got {text!r}")
    return size


def _input_options(args, card: dict, shape=None) -> dict:
    """The keyword arguments that say how image files become inputs: ``preprocessing``
    (``--scale/--offset``, else the card's), ``resize`` (``--resize``, else the card's, else
    squash) and ``size`` (``--size``, else the card's, for a model that accepts any size).

    ``shape``: the model's ``(H, W, C)`` when it is loaded here, to check ``--size`` against.
    """
    from kerasviz import models
    from kerasviz._preprocess import Preprocessing

    try:
        prep = Preprocessing.from_card(card, args.scale, args.offset)
    except ValueError as err:
        raise UsageError(f"--scale/--offset: {err}") from None
    given = _parse_size(args.size)
    size = given or models.card_size(card)
    if shape is not None:
        h, w = shape[0], shape[1]
        if h is not None and w is not None:
            if given is not None and given != (h, w):
                raise UsageError(
                    f"--size: the model takes {h}x{w} images; --size is for models that "
                    "accept any size"
                )
            size = None  # the model's own size
        elif size is None:
            raise UsageError(
                "--size: the model accepts any image size; give --size HxW (or input_size "
                "in its card, NAME.json beside the model file)"
            )
    return {
        "preprocessing": prep,
        "resize": args.resize or card.get("resize") or "squash",
        "size": size,
    }


def _images(args, model, card):
    from kerasviz import imageio, inspect

    shape = inspect.input_shape(model)
    try:
        return imageio.load_images(args.images, shape, **_input_options(args, card, shape))
    except FileNotFoundError as err:
        raise UsageError(str(err)) from None


def cmd_report(args) -> int:
    """Render the HTML report."""
    _quiet_tf()
    from kerasviz import report

    out = Path(args.out)
    _fresh_dir(out, args.force, ours=report.is_report_file)
    if args.images:
        for item in args.images:
            if not Path(item).exists():
                raise UsageError(f"--images: no such file or folder: {item}")
    options = _input_options(args, _card(args.model))
    path = report.build_report(
        model=args.model,
        images=args.images or None,
        out=out,
        methods=_csv(args.methods) if args.methods else report.DEFAULT_METHODS,
        layers=_csv(args.layers) if args.layers else None,
        class_names=args.class_names,
        reference=args.reference,
        force=args.force,
        max_figures=args.max_figures,
        progress=not _quiet(args),
        **options,
    )
    print(f"report: {path.resolve()}")
    return 0


def cmd_explain(args) -> int:
    """Explain images with one method; write each map as .npy and as a PNG overlay.

    Streams the files in batches (`kerasviz.jobs.explain_folder`): an interrupted run started
    again with the same arguments resumes where it stopped.
    """
    _quiet_tf()
    from kerasviz import attribution, inspect, jobs, scores

    quiet = _quiet(args)
    attribution.check_method(args.method)
    try:
        score = scores.parse(args.score)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.engine != "ray" and (args.address or args.workers or args.gpus_per_worker):
        raise UsageError("--address, --workers and --gpus-per-worker need --engine ray")
    if args.engine == "ray":
        if args.strategy != "default":
            raise UsageError("--strategy applies to --engine local (use --gpus-per-worker)")
        if args.workers is not None and args.workers < 1:
            raise UsageError(f"--workers: expected an int >= 1, got {args.workers}")
        if args.gpus_per_worker < 0:
            raise UsageError(f"--gpus-per-worker: expected >= 0, got {args.gpus_per_worker}")
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UsageError(
                '--engine ray needs Ray: pip install "kerasviz[ray]" (or pip install ray)'
            ) from None
    for item in args.images:
        if not Path(item).exists():
            raise UsageError(f"--images: no such file or folder: {item}")
    strategy = None
    if args.strategy == "mirrored":  # every GPU of this machine (the CPU if there is none)
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy()
        with strategy.scope():  # weights copied to every replica
            model, card = _load_model(args.model)
    else:
        model, card = _load_model(args.model)
    settings = {}
    if args.method in ("occlusion", "occlusion_incremental"):
        if args.patch is not None:
            settings["patch"] = args.patch
        if args.stride is not None:
            settings["stride"] = args.stride
    elif args.patch is not None or args.stride is not None:
        raise UsageError(
            "--patch and --stride apply to --method occlusion or occlusion_incremental only"
        )
    targets = None
    if args.targets is not None:
        try:
            targets = [int(t) for t in _csv(args.targets)]
        except ValueError:
            raise UsageError(f"--targets: expected integers, got {args.targets!r}") from None
        targets = targets[0] if len(targets) == 1 else targets
    options = _input_options(args, card, inspect.input_shape(model))
    try:
        result = jobs.explain_folder(
            model,
            args.images,
            method=args.method,
            out=args.out,
            batch_size=args.batch_size,
            targets=targets,
            settings=settings,
            class_names=card.get("class_names"),
            overwrite=args.force,
            progress=not quiet,
            strategy=strategy,
            score=score,
            engine=args.engine,
            address=args.address,
            workers=args.workers,
            gpus_per_worker=args.gpus_per_worker,
            **options,
        )
    except FileExistsError as err:
        raise UsageError(
            f"--out: {err}".replace("overwrite=True (--force)", "--force").replace("out: ", "", 1)
        ) from None
    except ValueError as err:
        if "`score=`" not in str(err):
            raise
        raise UsageError(
            f"{err} On the command line: --score output:NAME or output:NAME:regression:INDEX."
        ) from None
    resumed = f" ({result.skipped} done before)" if result.skipped else ""
    bad = len(result.failed)
    unread = f", {bad} image{'s' * (bad != 1)} unreadable" if bad else ""
    done = result.total - len(result.failed)
    print(f"explain: {done} maps in {Path(args.out).resolve()}{resumed}{unread}")
    strict = args.strict
    if strict is None:  # a folder is a data set to get through; named files are each wanted
        strict = not any(Path(item).is_dir() for item in args.images)
    return EXIT_BAD_IMAGES if strict and result.failed else 0


def cmd_embed(args) -> int:
    """Feature vectors of images, nearest neighbours, optional projector export."""
    _quiet_tf()
    from kerasviz import embedding

    quiet = _quiet(args)
    model, card = _load_model(args.model)
    images, files = _images(args, model, card)
    out = Path(args.out)
    # Both destinations are checked before anything is computed or written.
    _fresh_dir(
        out,
        args.force,
        ours=lambda rel: rel in (embedding.FEATURES_NAME, embedding.NEIGHBOURS_NAME),
    )
    if args.projector:
        _fresh_dir(Path(args.projector), args.force, "projector", ours=embedding.is_export_file)
    elif args.serve:
        raise UsageError("--serve needs --projector DIR")
    extractor = embedding.FeatureExtractor(model, layer=args.layer, reduce=args.reduce)
    vectors = extractor.extract(images, progress=not quiet)
    embedding.save_features(
        out, files, vectors, k=args.neighbours, metric=args.metric, overwrite=args.force
    )
    print(
        f"embed: {vectors.shape[0]} vectors of {vectors.shape[1]} values from layer "
        f"{extractor.layer!r} in {out.resolve()}"
    )
    if args.projector:
        labels = [Path(f).parent.name for f in files]
        labels = labels if len(set(labels)) > 1 else [Path(f).stem for f in files]
        path = embedding.export_projector(
            args.projector, vectors, labels=labels, images=images, overwrite=args.force
        )
        print(f"projector: tensorboard --logdir {path} --host 127.0.0.1")
        if args.serve:
            return _serve_tensorboard(path)
    return 0


def _serve_tensorboard(logdir: Path) -> int:
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(logdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(
        f"TensorBoard: http://127.0.0.1:{port}/#projector  (pid {proc.pid}; Ctrl-C stops it)",
        flush=True,
    )
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=10)
        return 0


MODEL_HELP = (
    "a shipped name (digits_cnn, shapes_cnn, snow_biased, snow_fair), a .keras/.h5/.hdf5 "
    "file (its card NAME.json beside it is read), or keras.applications.NAME (ImageNet "
    "weights, cached in $KERAS_HOME/models)"
)


def _add_model_images(p, images_required=True) -> None:
    p.add_argument("--model", default="digits_cnn", help=MODEL_HELP + " (default: digits_cnn)")
    p.add_argument(
        "--images",
        nargs="+",
        required=images_required,
        metavar="FILE_OR_DIR",
        help="PNG/JPEG files or folders of them",
    )
    p.add_argument(
        "--scale",
        type=float,
        help="8-bit pixel v becomes v*scale+offset (default: the model card's, else 1/255)",
    )
    p.add_argument("--offset", type=float, help="see --scale (default: the card's, else 0)")
    p.add_argument(
        "--resize",
        choices=RESIZE,
        help="how images of another aspect ratio fit the model: squash (stretch), crop "
        "(shorter side to size, centre cut out), pad (longer side to size, padded); "
        "default: the card's, else squash",
    )
    p.add_argument(
        "--size",
        metavar="HxW",
        help="input size for a model that accepts any size (default: the card's input_size)",
    )
    p.add_argument("--force", action="store_true", help="replace existing output")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kerasviz",
        description="See what a Keras CNN has learned and why it decides what it decides.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="layer table: name, path, type, output shape, uses")
    p.add_argument("model", nargs="?", help=MODEL_HELP)
    p.add_argument("--model", dest="model_option", metavar="MODEL", help="the same as MODEL")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "report",
        help="the HTML report: filters, activations, predictions, explanations, feature space",
    )
    _add_model_images(p, images_required=False)
    p.add_argument("--out", default="kerasviz-report", help="report folder")
    p.add_argument(
        "--methods",
        help="comma-separated explanation methods (default: occlusion,gradcam,saliency,lime)",
    )
    p.add_argument(
        "--layers",
        help="comma-separated layers for activation maps (default: one per resolution stage, "
        "at most 6)",
    )
    p.add_argument(
        "--max-figures",
        type=int,
        default=80,
        help="at most this many images in the report (default 80); sections past it say what "
        "was left out",
    )
    p.add_argument("--class-names", help="text file, one class name per line")
    p.add_argument(
        "--reference",
        help="folder of reference images for neighbours and the "
        "2-D map (one sub-folder per class gives labels)",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("explain", help="explanation maps of images: .npy and PNG overlays")
    _add_model_images(p)
    p.add_argument(
        "--method",
        default="occlusion",
        help="occlusion, gradcam, saliency, lime, ... (see kerasviz.attribution.METHODS)",
    )
    p.add_argument("--patch", type=int, help="occlusion patch size in pixels")
    p.add_argument("--stride", type=int, help="occlusion stride in pixels")
    p.add_argument(
        "--targets",
        help="class index, or one per image, comma-separated (default: each image's top class)",
    )
    p.add_argument(
        "--score",
        default="category",
        help="what is explained: category (a class, the default), regression:INDEX, "
        "output:NAME (one output of several: its classes) or output:NAME:regression:INDEX",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="images read, explained and written together (default 32); bounds memory",
    )
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process; ray: a pool of Ray actors, here or on a cluster "
        '(pip install "kerasviz[ray]"); the files written are the same',
    )
    p.add_argument("--address", help="with --engine ray: the Ray cluster to join (or 'auto')")
    p.add_argument("--workers", type=int, help="with --engine ray: actors (default: one per CPU)")
    p.add_argument(
        "--gpus-per-worker",
        type=float,
        default=0,
        help="with --engine ray: GPUs each actor holds (default 0)",
    )
    p.add_argument(
        "--strategy",
        choices=("default", "mirrored"),
        default="default",
        help="mirrored: split each batch across all GPUs of this machine "
        "(tf.distribute.MirroredStrategy); default: one device",
    )
    p.add_argument(
        "--out",
        default="kerasviz-explain",
        help="output folder; a folder holding the same job is resumed, --force starts again",
    )
    bad = p.add_mutually_exclusive_group()
    bad.add_argument(
        "--skip-bad",
        dest="strict",
        action="store_false",
        default=None,
        help="an unreadable image is recorded in the manifest and skipped, exit code 0 "
        "(the default when --images names a folder)",
    )
    bad.add_argument(
        "--strict",
        dest="strict",
        action="store_true",
        help=f"as --skip-bad, but exit code {EXIT_BAD_IMAGES} if any image could not be read "
        "(the default when --images names files)",
    )
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("embed", help="feature vectors, nearest neighbours, projector export")
    _add_model_images(p)
    p.add_argument("--layer", help="feature layer (default: the input of the last Dense)")
    p.add_argument(
        "--reduce",
        default=None,
        choices=("flatten", "gap", "max"),
        help="how spatial maps become vectors (default: flatten, gap for any-size models)",
    )
    p.add_argument("--neighbours", type=int, default=5, help="neighbours per image")
    p.add_argument("--metric", default="euclidean", choices=("euclidean", "cosine"))
    p.add_argument(
        "--out", default="kerasviz-embed", help="folder for features.npy and neighbours.csv"
    )
    p.add_argument("--projector", help="also write a TensorBoard projector export here")
    p.add_argument(
        "--serve", action="store_true", help="start TensorBoard on 127.0.0.1 and print the URL"
    )
    p.set_defaults(func=cmd_embed)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from kerasviz import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    quiet = os.environ.get("KERASVIZ_QUIET")  # --quiet sets it for this command only
    try:
        return args.func(args)
    except UsageError as err:
        print(f"kerasviz {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, KeyError, TypeError, FileNotFoundError, FileExistsError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"kerasviz {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("kerasviz: interrupted", file=sys.stderr)
        return 130
    finally:  # main([...]) called in-process leaves the caller's environment as it was
        if quiet is None:
            os.environ.pop("KERASVIZ_QUIET", None)
        else:
            os.environ["KERASVIZ_QUIET"] = quiet


if __name__ == "__main__":
    sys.exit(main())
