import sys

from salesops.bench.run import main

sys.exit(main())
