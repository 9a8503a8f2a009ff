"""Browser tests of the studio (a package, so its conftest does not shadow tests/conftest.py)."""
