"""Copy a long run's newest readable checkpoint into a folder to commit.

    python tools/protocol_snapshot.py runs/burda-vae-k1 benchmarks/protocol_runs/burda-vae-k1

It copies config.json, history.csv and history.json, and the newest checkpoint that
reads back whole (``vae_prac.run_folder.readable_checkpoint``), with a checkpoint index
naming only it; older checkpoints in the destination are removed. The run may go on
while it copies: files are read once and written atomically. ``vae-prac train --out
DESTINATION`` (or a copy of it) then resumes from that checkpoint.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from vae_prac import run_folder


def snapshot(run: Path, destination: Path) -> str:
    """Copy ``run``'s newest readable checkpoint and its history to ``destination``."""
    latest = Path(run_folder.readable_checkpoint(str(run), say=lambda line: None))
    checkpoints = destination / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    for old in checkpoints.glob("ckpt-*"):
        if not old.name.startswith(latest.name + "."):
            old.unlink()
    for part in latest.parent.glob(latest.name + ".*"):
        _copy(part, checkpoints / part.name)
    state = f'model_checkpoint_path: "{latest.name}"\nall_model_checkpoint_paths: "{latest.name}"\n'
    _write(checkpoints / "checkpoint", state.encode())
    for name in ("config.json", "history.csv", "history.json"):
        if (run / name).exists():
            _copy(run / name, destination / name)
    return latest.name


def _copy(source: Path, target: Path) -> None:
    run_folder.write_atomically(target, lambda partial: shutil.copyfile(source, partial))


def _write(target: Path, data: bytes) -> None:
    run_folder.write_atomically(target, lambda partial: Path(partial).write_bytes(data))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="the run folder (vae-prac train --out)")
    parser.add_argument("destination", type=Path, help="the folder to commit")
    args = parser.parse_args(argv)
    try:
        name = snapshot(args.run, args.destination)
    except run_folder.RunFolderError as e:
        print(f"protocol_snapshot: {e}", file=sys.stderr)
        return 2
    print(f"Copied {name} of {args.run} to {args.destination}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
