"""The block device layer (SPEC-STORAGE part A)."""

__all__: list[str] = []
