"""The README's model table, made from the format registry and models/manifest.json.

Run `python -m export.table` after an export and paste its output into the README.
"""
from __future__ import annotations

from edge_app.models import read_manifest
from export.formats import FORMATS


def model_table(manifest: dict) -> str:
    artifacts = manifest.get("artifacts", {})
    rows = ["| file | format | runtime | size | MNIST test accuracy | Keras | agreement with Keras |",
            "|---|---|---|---:|---:|---:|---:|"]
    for stem in sorted({entry["source_model"].removesuffix(".keras") for entry in artifacts.values()}):
        for fmt in FORMATS.values():  # registry order: the edge default first
            entry = artifacts.get(fmt.filename(stem))
            if entry is None:
                continue
            rows.append(f"| `{entry['file']}` | {fmt.description} | {fmt.runtime} | {entry['size_bytes'] / 1024:.1f} KiB "
                        f"| {100 * entry['mnist_test_accuracy']:.2f}% | {100 * entry['keras_accuracy']:.2f}% "
                        f"| {100 * entry['agreement_with_keras']:.2f}% |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(model_table(read_manifest()))
