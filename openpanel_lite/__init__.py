"""openpanel-lite: single-process, OpenPanel-compatible web and product analytics."""

__version__ = "0.1.0"
