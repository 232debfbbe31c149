"""Management domain: instances and their Chatwoot integrations (no HTTP framework here)."""
