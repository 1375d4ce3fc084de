"""LLM training: sequences from prepared tokens (:mod:`.data`), the trainer (:mod:`.trainer`), export.

Typical use (the ``sparktts train lm`` / ``sparktts export`` commands call the same functions)::

    from sparktts.data.prepare import prepare
    from sparktts.train.lm import train_lm
    from sparktts.train.export import export_run

    prepare("manifest.jsonl", "Spark-TTS-0.5B", "data/")
    run = train_lm("small", "data/", "runs/lm1")                 # or init="Spark-TTS-0.5B" to fine-tune
    export_run(run, "my-release/")                               # SparkTTS.from_pretrained("my-release/")
"""

from sparktts.train.lm.config import LMModelConfig, LMTrainConfig, LoraConfig
from sparktts.train.lm.trainer import LMTrainer, train_lm

__all__ = ["LMModelConfig", "LMTrainConfig", "LMTrainer", "LoraConfig", "train_lm"]
