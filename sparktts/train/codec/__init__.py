"""BiCodec training: typed config, data, discriminators, losses, the trainer and the release export.

``train_codec(config, data, out)`` runs (or resumes) a run directory; ``export_codec(run_dir, out)``
(:func:`sparktts.train.codec.export.export`) turns it into a release directory that
``BiCodec.from_pretrained`` and ``BiCodecTokenizer`` load. The command line (``sparktts train codec``,
``sparktts export``) calls the same functions.
"""

from .config import CodecTrainConfig, load_codec_config

__all__ = ["CodecTrainConfig", "export_codec", "load_codec_config", "train_codec"]


def __getattr__(name: str):
    # The trainer and exporter pull in accelerate/transformers; import them only when asked for.
    if name == "train_codec":
        from .trainer import train_codec

        return train_codec
    if name == "export_codec":
        from .export import export

        return export
    raise AttributeError(name)
