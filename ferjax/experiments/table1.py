"""Table I: VGG13 in the study's six configurations.

    python -m ferjax.experiments.table1 [--data DIR|synthetic] [--profile quick|paper] ...
"""
import sys

from ferjax.experiments.common import table_main

if __name__ == "__main__":
    sys.exit(table_main("table1"))
