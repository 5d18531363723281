"""Browser tests: the conversation page in Debian's Chromium (a package, so its conftest has its own name)."""
