"""Locust users for both ingest paths and the reconciling load-test runner."""
