"""Chapter 0's exercises (to be written)."""

__all__: list[str] = []
