"""`python -m seem_annotator ...` is the same as the `seem-annotator` console script."""

import sys

from seem_annotator.cli.main import main

sys.exit(main())
