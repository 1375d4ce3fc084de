"""Carry a release (and its runs' records) back from the GPU machine in pieces the device tool returns.

    python data/builtin/transfer.py pack RELEASE OUT [--runs RUN ...] [--extra FILE ...]  # GPU machine
    python data/builtin/transfer.py unpack FOLDER RELEASE [--work DIR]   # here, on the files that came back

The device tool brings back at most 8 files of 16 MiB, 64 MiB in all, while a float32 release of the
GPU recipe is about 85 MB. ``pack`` stores every float32 tensor of the release's safetensors files as
bfloat16 (half the bytes), tars the release and cuts it into 15 MiB pieces (``release.tar.000``, ...);
with ``--runs`` / ``--extra`` it adds ``work.tar.gz``: each run's ``config.yaml``, ``run.json``,
``metrics.csv``, ``validation.csv`` and ``examples.json`` (what the model card reads; no checkpoints) as
``RUN_NAME/...``, and the extra files (``build.json``, logs) at its top. ``unpack`` joins the pieces, turns the bfloat16
tensors back into float32 (exact: every bfloat16 value is a float32 value) and writes the release
folder whole or not at all (the weights are the trained ones rounded to bfloat16); ``--work`` gets
what ``work.tar.gz`` holds, laid out as the build's working folder.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

PIECE = 15 * 2**20
RUN_RECORDS = ("config.yaml", "run.json", "metrics.csv", "validation.csv", "examples.json", "skipped.jsonl")


def pack(release: Path, out: Path, runs: list[Path] = (), extra: list[Path] = ()) -> list[Path]:
    """``release`` -> ``out/release.tar.NNN`` pieces (+ ``out/work.tar.gz``); returns the files written."""
    import torch

    from sparktts.checkpoint import cast_weights

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(shutil.copytree(release, Path(tmp) / "release"))
        cast_weights(copy, torch.bfloat16)
        blob = _tar(copy, "release")
    written = []
    for i in range(0, len(blob), PIECE):
        piece = out / f"release.tar.{i // PIECE:03d}"
        piece.write_bytes(blob[i:i + PIECE])
        written.append(piece)
    if runs or extra:
        with tarfile.open(out / "work.tar.gz", "w:gz") as t:
            for run in runs:
                for name in RUN_RECORDS:
                    if (run / name).is_file():
                        t.add(run / name, f"{run.name}/{name}")
            for f in extra:
                t.add(f, f.name)
        written.append(out / "work.tar.gz")
    return written


def _tar(folder: Path, name: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        t.add(folder, name)
    return buf.getvalue()


def unpack(folder: Path, release: Path, work: Path | None = None) -> Path:
    """The pieces in ``folder`` -> the float32 release folder ``release`` (and ``work.tar.gz`` into ``work``)."""
    import torch

    from sparktts.checkpoint import cast_weights
    from sparktts.fileio import atomic_dir

    pieces = sorted(folder.glob("release.tar.[0-9][0-9][0-9]"))
    if not pieces:
        raise SystemExit(f"{folder}: no release.tar.NNN pieces (pack writes them)")
    blob = b"".join(p.read_bytes() for p in pieces)
    with atomic_dir(release, replace=True) as tmp:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as t:
            t.extractall(tmp, filter="data")
        for part in (tmp / "release").iterdir():
            part.rename(tmp / part.name)
        (tmp / "release").rmdir()
        cast_weights(tmp, torch.float32, source=torch.bfloat16)
    if work is not None and (folder / "work.tar.gz").is_file():
        work.mkdir(parents=True, exist_ok=True)
        with tarfile.open(folder / "work.tar.gz", "r:gz") as t:
            t.extractall(work, filter="data")
    return release


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pack", help="release -> bfloat16 pieces of at most 15 MiB")
    a.add_argument("release", type=Path)
    a.add_argument("out", type=Path)
    a.add_argument("--runs", type=Path, nargs="*", default=[], help="run folders whose records to add")
    a.add_argument("--extra", type=Path, nargs="*", default=[], help="files to add beside the runs")
    b = sub.add_parser("unpack", help="pieces -> float32 release folder")
    b.add_argument("folder", type=Path)
    b.add_argument("release", type=Path)
    b.add_argument("--work", type=Path, default=None, help="where to put the runs' records and extra files")
    args = p.parse_args(argv)
    if args.command == "pack":
        for f in pack(args.release, args.out, args.runs, args.extra):
            print(f"{f} {f.stat().st_size / 2**20:.1f} MiB")
    else:
        print(unpack(args.folder, args.release, args.work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
