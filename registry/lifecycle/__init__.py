"""Lifecycle: stages and aliases, promotion policies, events and webhooks."""
