"""`digits`: one command, a subcommand per job.

The table below is the one place that names the packages behind each subcommand, by string, so a
subcommand's package is imported only when it runs: `digits predict` and `digits run` never load
TensorFlow, and a Raspberry Pi without it can use every edge subcommand.
"""
from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys

# name -> (module with `add_arguments(parser)` and `main(args) -> int`, one-line help)
SUBCOMMANDS = {
    "train": ("train.cli", "train a CNN (or the MLP baseline) on MNIST [needs the 'train' extra]"),
    "export": ("export.cli", "export a .keras model to TFLite float32/int8 and ONNX, verified [needs 'train']"),
    "predict": ("edge_app.predict", "read digits from image files with a .tflite or .onnx model"),
    "run": ("edge_app.run", "read digits live from a webcam, video, images or Picamera2"),
    "draw": ("edge_app.draw", "draw a digit with the mouse and watch the model read it"),
    "serve": ("edge_app.serve", "serve a web page from the device: live view, readings, draw pad, photo upload "
                                "[needs 'serve']"),
    "bench": ("export.bench", "benchmark the models: latency, throughput, size, accuracy"),
    "doctor": ("edge_app.doctor", "check this device: versions, runtimes, models against the manifest, cameras"),
}


def _build_parser(argv: list[str]):
    parser = argparse.ArgumentParser(prog="digits", description="Handwritten-digit recognition for edge devices.")
    parser.add_argument("-V", "--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


# Packages outside the edge install -> the extra that brings them.
OPTIONAL_PACKAGES = {"tensorflow": "train", "keras": "train", "tf2onnx": "train", "onnx": "train",
                     "matplotlib": "plot", "starlette": "serve", "uvicorn": "serve", "paho": "mqtt"}


DISTRIBUTION = "digits-edge"  # the project's name on pip (pyproject.toml's [project] name)


def install_hint(extra: str) -> str:
    """How to add an extra, for a wheel install and for a clone: pip adds an extra's packages to an installed
    distribution without reinstalling it; `-e '.[extra]'` only works inside a checkout."""
    return f"pip install '{DISTRIBUTION}[{extra}]' (from a clone: pip install -e '.[{extra}]')"


def _missing_package(command: str, error: ModuleNotFoundError) -> int:
    root = (error.name or "").split(".")[0]
    extra = OPTIONAL_PACKAGES.get(root, "train")
    print(f"digits {command}: needs {root!r}, which this install lacks: {install_hint(extra)}", file=sys.stderr)
    return 2


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show each option's default, unless its help text already says what the default is."""

    def _get_help_string(self, action):
        if "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _kebab_case(parser: argparse.ArgumentParser) -> None:
    """One flag style: every option is shown and parsed as --kebab-case (`_kebab_argv` turns the
    --snake_case spellings the commands were first written with into it before parsing)."""
    for action in parser._actions:
        long = [name for name in action.option_strings if name.startswith("--")]
        kebab = ["--" + name[2:].replace("_", "-") for name in long]
        for old, new in zip(long, kebab):
            parser._option_string_actions.pop(old, None)
            parser._option_string_actions[new] = action
        action.option_strings = list(dict.fromkeys(
            [name for name in action.option_strings if not name.startswith("--")] + kebab))


def _kebab_argv(argv: list[str]) -> list[str]:
    """`--snake_case` options (and `--snake_case=value`) spelled the new way, values left alone; so both
    spellings are accepted and a shortened `--vote` still matches only one option."""
    spelled = []
    for token in argv:
        if token == "--":
            spelled += argv[len(spelled):]
            break
        if token.startswith("--"):
            name, equals, value = token.partition("=")
            token = name.replace("_", "-") + equals + value
        spelled.append(token)
    return spelled


def version() -> str:
    """The installed package's version (the checkout's pyproject.toml when run from a clone)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed: pip install .)"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["--version"], ["-V"]):
        print(f"digits {version()}")
        return 0
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        parser = _build_parser(argv)
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command {argv[0]!r}: choose one of {', '.join(SUBCOMMANDS)}")
        parser.print_help()
        return 0 if argv else 2
    name = argv[0]
    module_name, help_text = SUBCOMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        return _missing_package(name, error)
    parser = argparse.ArgumentParser(prog=f"digits {name}", description=help_text,
                                     formatter_class=_DefaultsFormatter)
    module.add_arguments(parser)
    _kebab_case(parser)
    args = parser.parse_args(_kebab_argv(argv[1:]))
    args.command_line = shlex.join(["digits", *argv])  # recorded in reports and the manifest
    try:
        return int(module.main(args) or 0)
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] in OPTIONAL_PACKAGES:  # heavy packages are imported late
            return _missing_package(name, error)
        raise
    except BrokenPipeError:
        # The reader went away (`digits predict ... | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        # Ctrl-C: what was done is already printed (results are written as they come); no traceback.
        print(f"digits {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
