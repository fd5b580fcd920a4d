"""The ``kerasviz`` command line: parses arguments and calls the library, nothing more.

TensorFlow is imported only inside the commands, so ``kerasviz --help`` answers at once.
Bad input ends with a one-line error and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with what the user asked for: printed as one line, exit code 2."""


def _quiet_tf() -> None:
    """Import TensorFlow with its start-up log lines (printed by C++ before logging is set up,
    so TF_CPP_MIN_LOG_LEVEL cannot silence them) kept off the user's terminal."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules or os.environ.get("KERASVIZ_TF_LOGS"):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _load_model(ref: str):
    """A shipped model name or a ``.keras`` path, or a UsageError saying what is wrong."""
    from kerasviz import models

    if ref in models.SHIPPED:
        return models.load(ref), models.card(ref)
    path = Path(ref)
    if not path.exists():
        raise UsageError(f"model: no such file: {ref} (or a shipped name: "
                         f"{', '.join(models.SHIPPED)})")
    if path.is_dir() or path.suffix != ".keras":
        raise UsageError(f"model: expected a .keras file, got {ref}")
    try:
        model = models.load(str(path))
    except ValueError as err:
        raise UsageError(f"model: {err}") from None
    card_path = path.with_suffix(".json")
    card = {}
    if card_path.is_file():
        import json

        card = json.loads(card_path.read_text())
    return model, card


def cmd_info(args) -> int:
    """Print the layer table of a model: what each layer can be used for."""
    _quiet_tf()
    from kerasviz import inspect

    model, card = _load_model(args.model)
    rows = inspect.layer_table(model)
    print(f"model: {model.name}   input: {inspect.input_shape(model)}   "
          f"outputs: {inspect.num_outputs(model)}   params: {model.count_params():,}   "
          f"head: {inspect.head_activation(model) or 'linear'}")
    if card.get("class_names"):
        print(f"classes: {', '.join(card['class_names'])}")
    header = ("path", "type", "output shape", "params", "filters", "activ.", "cam")
    table = [header]
    for r in rows:
        table.append((r.path, r.type, str(r.output_shape), f"{r.params:,}",
                      "yes" if r.filters else "", "yes" if r.activations else "",
                      "yes" if r.cam else ""))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    try:
        print(f"default CAM layer: {inspect.last_spatial_layer(model)}")
    except ValueError:
        print("default CAM layer: none (no spatial layer)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kerasviz",
        description="See what a Keras CNN has learned and why it decides what it decides.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="layer table: name, path, type, output shape, uses")
    p.add_argument("model", help="a .keras file or a shipped model name (digits_cnn, ...)")
    p.set_defaults(func=cmd_info)
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


if __name__ == "__main__":
    sys.exit(main())
