"""finefcace — FineFACE (Manzoor & Rattani): fair facial attribute classification
leveraging fine-grained features. The library behind the course in ``book/``."""

__version__ = "0.1.0"
