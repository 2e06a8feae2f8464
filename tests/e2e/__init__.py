"""End-to-end tests on a real Airflow; ``harness`` is the reusable part."""
