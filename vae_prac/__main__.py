"""``python -m vae_prac``: the same command line as ``vae-prac``."""

import sys

from vae_prac.cli import main

if __name__ == "__main__":
    sys.exit(main())
