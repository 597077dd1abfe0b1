"""Table II: the light model in the study's six configurations.

    python -m ferjax.experiments.table2 [--data DIR|synthetic] [--profile quick|paper] ...
"""
import sys

from ferjax.devices import restart_with_huge_pages

if __name__ == "__main__":
    restart_with_huge_pages()     # first: the experiments import JAX
    from ferjax.experiments.common import table_main
    sys.exit(table_main("table2"))
