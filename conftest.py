"""Project-level conftest: the plugin itself is loaded through its pytest11 entry point,
exactly as a downstream project gets it; nothing is imported from here."""
