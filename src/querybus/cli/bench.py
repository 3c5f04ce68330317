def bench() -> None:
    """placeholder"""
