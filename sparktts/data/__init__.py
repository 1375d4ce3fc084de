"""Training data: a manifest of clips -> BiCodec token shards and attribute labels (``sparktts prepare``).

- :mod:`sparktts.data.manifest`: reading and checking the manifest JSONL.
- :mod:`sparktts.data.shards`: the token shard format (safetensors) and reading a data folder back.
- :mod:`sparktts.data.prepare`: the resumable batched extraction that writes a data folder.
"""

from sparktts.data.manifest import DataError, ManifestEntry, read_manifest
from sparktts.data.shards import TokenizedClip, read_clips, read_data_info, read_tokenized

__all__ = [
    "DataError",
    "ManifestEntry",
    "TokenizedClip",
    "read_clips",
    "read_data_info",
    "read_manifest",
    "read_tokenized",
]
