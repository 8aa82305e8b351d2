import sys

from l2tpfast.cli import main

sys.exit(main())
