"""Workloads: LLM configs lowered to operators. Imports nothing else of TPEForge."""


class ModelError(ValueError):
    """A workload input is invalid (config file, model name, shape); ``str`` is one line."""


__all__ = ["ModelError"]
