"""Support for the ClickHouse store tests: the engine to run on, and a test-only HTTP front for chdb."""
