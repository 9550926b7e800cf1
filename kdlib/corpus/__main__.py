"""``python -m kdlib.corpus build|verify``: see :mod:`kdlib.corpus`; ``python -m kdlib.corpus real build``: see
:mod:`kdlib.corpus.real`."""

import sys

from kdlib.corpus import main

if __name__ == "__main__":
    sys.exit(main())
