"""Studies on Ray Tune: the trainer as a trainable, Optuna search, the paper's protocols as grids,
results as Parquet. The only part of the package that imports Ray; ``attnfd`` itself does not."""
