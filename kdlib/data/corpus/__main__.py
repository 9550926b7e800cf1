"""``python -m kdlib.data.corpus build|verify``: see :mod:`kdlib.data.corpus`; ``python -m kdlib.data.corpus real build``: see
:mod:`kdlib.data.corpus.real`."""

import sys

from kdlib.data.corpus import main

if __name__ == "__main__":
    sys.exit(main())
