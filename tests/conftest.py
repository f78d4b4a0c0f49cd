"""Shared test configuration: real services come from the fixture plugins below."""

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.clickhouse"]
