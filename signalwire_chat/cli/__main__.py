"""``python -m signalwire_chat.cli``: the same as the ``signalwire-chat`` console script."""

import sys

from . import main

sys.exit(main())
