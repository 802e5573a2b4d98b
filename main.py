"""Start the seem-annotator desktop app: `python main.py [FOLDER]`."""

import sys

from seem_annotator.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["gui", *sys.argv[1:]]))
