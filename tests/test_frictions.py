"""Figures that show what they promise: the whole training curve, several digits.

The notebooks' stored outputs include each figure's text form ("<Figure size 600x350
with 1 Axes>"), which nbval compares: the ELBO curve keeps its size and its one Axes
(an inset is a child of it, not another Axes of the figure).
"""

import numpy as np
import pytest

from vae_prac import plotting
from vae_prac.training import History


def _history(n_rows=100, log_every=100, print_every=1000):
    """A run shaped like the original practical's: the ELBO starts near -540 nats and
    climbs to about -95, fast at first."""
    iteration = np.arange(1, n_rows + 1) * log_every
    train = -95.0 - 445.0 * np.exp(-iteration / 250.0) + np.sin(iteration) * 0.5
    test = np.where(iteration % print_every == 0, train - 1.0, np.nan)
    return History(
        iteration=list(iteration),
        train_elbo=list(train),
        test_elbo=list(test),
        examples_per_sec=[20000.0] * n_rows,
    )


def _shown_by(axes, x, y):
    x0, x1 = sorted(axes.get_xlim())
    y0, y1 = sorted(axes.get_ylim())
    return x0 <= x <= x1 and y0 <= y <= y1


def test_the_elbo_curve_shows_the_whole_run():
    history = _history()
    fig = plotting.elbo_curve(history, reference=-90.0)
    fig.canvas.draw()
    (ax,) = fig.axes  # one Axes, as the stored outputs say; an inset is its child
    views = [ax, *ax.child_axes]
    points = [(i, v) for i, v in zip(history.iteration, history.train_elbo)]
    points += [(i, v) for i, v in zip(history.iteration, history.test_elbo) if not np.isnan(v)]
    hidden = [
        (int(i), round(float(v), 1))
        for i, v in points
        if not any(_shown_by(a, i, v) for a in views)
    ]
    assert not hidden, f"the ELBO figure hides the points {hidden[:5]}..."
    # The main axes still zoom where the run spends most iterations, so the last
    # nats of progress (and the train-test gap) stay legible.
    low, high = sorted(ax.get_ylim())
    assert high - low < 0.3 * (max(history.train_elbo) - min(history.train_elbo))
    assert low < np.percentile(history.train_elbo, 10)


def test_a_short_run_needs_no_inset():
    fig = plotting.elbo_curve(_history(n_rows=5, log_every=10, print_every=50))
    (ax,) = fig.axes
    assert not ax.child_axes


def _rows(fig):
    """Each row's image (the axes' array), top to bottom."""
    return [ax.get_images()[0].get_array() for ax in fig.axes]


@pytest.mark.parametrize("given", [8, 1, 20])
def test_the_posterior_prior_figure_shows_several_digits_legibly(given, small_vae, digits, capsys):
    model = small_vae()
    fig = plotting.posterior_prior(model, digits[:given], seed=0, title="Iteration 0")
    fig.canvas.draw()
    rows = _rows(fig)
    assert len(rows) == 3  # the data, posterior samples, prior samples
    columns = [round((row.shape[1] + 2) / 30) for row in rows]  # 28 pixels + a gap each
    assert columns == [8, 8, 8]
    if given >= 8:
        np.testing.assert_array_equal(rows[0][:, :28], digits[0, :, :, 0])
    for ax, row in zip(fig.axes, rows):
        pixels_per_digit = ax.get_window_extent().width * 28 / row.shape[1]
        assert pixels_per_digit >= 60, f"each digit is {pixels_per_digit:.0f} pixels wide"
    assert capsys.readouterr() == ("", "")


def test_posterior_prior_checks_n(small_vae, digits):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        plotting.posterior_prior(small_vae(), digits[:2], n=0)
