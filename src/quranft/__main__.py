import sys

from quranft.cli import main

sys.exit(main())
