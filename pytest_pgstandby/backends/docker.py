def availability(image: str) -> tuple[bool, str]:
    return False, "docker backend not written yet"
