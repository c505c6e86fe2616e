"""Bundled HF-style ``config.json`` files of the model zoo (data only; see ``models.llm``).

Each ``<name>.json`` is the Hugging Face config of the named checkpoint as transformers
serializes it; ``models.llm.load_model("<name>")`` loads it.
"""
