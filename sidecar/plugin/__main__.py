"""``python -m sidecar.plugin``: the command the installed wrapper runs."""

import sys

from sidecar.plugin.serve import main

sys.exit(main())
