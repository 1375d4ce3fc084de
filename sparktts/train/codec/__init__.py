"""BiCodec training: typed config, data, discriminators, losses, the trainer and the release export.

``train_codec(config, data, out)`` runs (or resumes) a run directory; ``export(run_dir, out)`` turns
it into a release directory that ``BiCodec.from_pretrained`` and ``BiCodecTokenizer`` load. The
command line (``sparktts train codec`` / ``sparktts export``) calls the same functions.
"""

from .config import CodecTrainConfig, load_codec_config

__all__ = ["CodecTrainConfig", "load_codec_config", "train_codec", "export"]


def __getattr__(name: str):
    # The trainer and exporter pull in accelerate/transformers; import them only when asked for.
    if name == "train_codec":
        from .trainer import train_codec

        return train_codec
    if name == "export":
        from .export import export

        return export
    raise AttributeError(name)
