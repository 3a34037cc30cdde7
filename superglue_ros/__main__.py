import sys

from superglue_ros.tools.cli import main

sys.exit(main())
