"""An Optuna-driven study on Ray: alpha, the distilled layer subset and the alpha-decay variant.

    python tune/search.py                                   # a small study on the built-in shapes data
    python tune/search.py --dataset voc --data-root ~/data/voc --num-samples 32 --gpus-per-trial 0.5
    python tune/search.py --dataset voc --address auto --storage s3://bucket/attnfd   # on a cluster's head
    python tune/search.py --resume --name NAME              # continue an interrupted study
    python tune/search.py --resume auto --name NAME         # continue NAME if it exists, else start it

Run ``--help`` for every option.
"""

from attnfd.study.cli import search_main

if __name__ == "__main__":
    search_main()
