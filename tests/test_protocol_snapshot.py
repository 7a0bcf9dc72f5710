"""tools/protocol_snapshot.py: a long run's newest checkpoint, copied to be committed,
resumes where the run stopped, with the same weights and history."""

import importlib.util
from pathlib import Path

import numpy as np

from vae_prac import Config, training
from vae_prac.run_folder import History

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location(
    "protocol_snapshot", ROOT / "tools" / "protocol_snapshot.py"
)
protocol_snapshot = importlib.util.module_from_spec(spec)
spec.loader.exec_module(protocol_snapshot)


def test_a_snapshot_holds_the_newest_checkpoint_only_and_resumes(tmp_path, digits):
    run, kept = tmp_path / "run", tmp_path / "kept"
    config = Config(
        latent_dim=2, hidden_size=8, n_iterations=30, print_every=10, log_every=10, n_eval=20
    )
    images = (digits[:100, ..., 0] * 255).astype(np.uint8)
    eval_x = digits[:20]
    common = dict(progress=False, verbose=False, train_images=images, eval_x=eval_x)
    training.train(config.replace(logdir=str(run)), **common)
    assert protocol_snapshot.main([str(run), str(kept)]) == 0
    names = sorted(p.name for p in (kept / "checkpoints").iterdir())
    assert names == ["checkpoint", "ckpt-30.data-00000-of-00001", "ckpt-30.index"]
    model, iteration = training.restore(str(kept), verbose=False)
    original, _ = training.restore(str(run), verbose=False)
    assert iteration == 30
    for a, b in zip(model.weights, original.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # Continued from the snapshot: the same run as continued from the original folder.
    longer = config.replace(n_iterations=40)
    a = training.train(longer.replace(logdir=str(kept)), **common)
    b = training.train(longer.replace(logdir=str(run)), **common)
    assert a.iteration == b.iteration == 40
    for x, y in zip(a.model.weights, b.model.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    rows = History.from_csv(kept / "history.csv").rows()
    assert [int(r["iteration"]) for r in rows] == [10, 20, 30, 40]


def test_no_checkpoint_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert protocol_snapshot.main([str(tmp_path / "run"), str(tmp_path / "kept")]) == 2
    assert "checkpoint" in capsys.readouterr().err
