"""Training and fine-tuning (``pip install sparktts-lab[train]``).

Kept apart from inference, as vocos and descript-audio-codec keep theirs: nothing under
``sparktts/`` outside this package imports it. Layout:

- :mod:`sparktts.train.config`: typed run configs read from YAML or a shipped preset name.
- :mod:`sparktts.train.run`: the run directory (resolved config, checkpoints, ``metrics.csv``,
  TensorBoard events), shared by both trainers.
- :mod:`sparktts.train.codec`: BiCodec losses, discriminators and trainer.
- :mod:`sparktts.train.lm`: training sequences, collation and the LLM trainer.
- :mod:`sparktts.train.export`: a run directory -> a release directory every loader accepts.
"""
