import sys

from serving.gateway.cli import main

sys.exit(main())
