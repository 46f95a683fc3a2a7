import sys

from edge_app.cli import main

sys.exit(main(["export", *sys.argv[1:]]))
