import sys

from fleetkit_weights.fastpath import main

sys.exit(main())
