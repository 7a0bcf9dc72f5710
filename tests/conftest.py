"""Shared test fixtures: quiet TensorFlow, real digits, small models.

The library's tests use small networks (latent 2-8, hidden 16-64) so the whole suite
runs in minutes on a laptop CPU; what they check does not depend on the network size.
"""

import os

import pytest

# Before TensorFlow is imported anywhere: no C++ log lines. (Imports of vae_prac stay
# inside the fixtures so that the warning filter below applies to them.)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="session")
def digits():
    """500 real MNIST test digits, thresholded at 0.5: float32 [500, 28, 28, 1]."""
    from vae_prac import data

    x = data.eval_set(500, "threshold", seed=0)
    x.setflags(write=False)  # shared between tests: nobody may change it
    return x


@pytest.fixture
def small_vae():
    """A factory of small, freshly initialized VAEs with seeded weights."""
    import keras

    from vae_prac.model import VAE

    def make(latent_dim=4, hidden_size=32, seed=0):
        keras.utils.set_random_seed(seed)
        return VAE(latent_dim, hidden_size)

    return make


#: Markers that make a test slow too, so that ``-m "not slow"`` leaves them all out.
SLOW_KINDS = ("notebook", "browser", "network")


@pytest.hookimpl(tryfirst=True)  # before pytest deselects by -m
def pytest_collection_modifyitems(items):
    """nbval's cells of the solution notebooks are notebook tests; every test marked
    notebook, browser or network is also slow."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebook)
        if any(item.get_closest_marker(kind) for kind in SLOW_KINDS):
            item.add_marker(pytest.mark.slow)


def pytest_configure(config):
    # TFP 0.25 still calls distutils' LooseVersion on import; that is TFP's business.
    config.addinivalue_line("filterwarnings", "ignore:distutils Version classes:DeprecationWarning")
