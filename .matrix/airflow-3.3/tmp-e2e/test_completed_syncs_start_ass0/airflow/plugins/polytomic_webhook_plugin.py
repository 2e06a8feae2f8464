from airflow_provider_polytomic.webhook.plugin import PolytomicWebhookPlugin  # noqa: F401
