"""File formats: ``ckpt`` (MindSpore protobuf records) and ``safetensors``."""
