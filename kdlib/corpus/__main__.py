"""``python -m kdlib.corpus build|verify``: see :mod:`kdlib.corpus`."""

import sys

from kdlib.corpus import main

if __name__ == "__main__":
    sys.exit(main())
