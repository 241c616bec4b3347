import sys

from fleetkit_weights.cli import main

sys.exit(main())
