"""`python -m hyperfcn`: the same as the `hyperfcn` command."""

import sys

from .cli import main

sys.exit(main())
