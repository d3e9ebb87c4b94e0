"""The edges that talk to the world: GitLab, Infisical, the webhook, metrics, logs, cron, retrying."""
