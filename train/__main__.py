import sys

from edge_app.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
