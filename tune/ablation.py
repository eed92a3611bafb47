"""The paper's protocols as grids on Ray, each cell repeated over seeds.

    python tune/ablation.py --protocol layers                 # Table 3: no distillation + 7 layer subsets
    python tune/ablation.py --protocol methods                # Table 1: no distillation + every method
    python tune/ablation.py --protocol alpha --alphas 0.1,1,10

Run ``--help`` for every option.
"""

from attnfd.study.cli import ablation_main

if __name__ == "__main__":
    ablation_main()
