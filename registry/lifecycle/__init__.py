"""Lifecycle: stages and aliases, promotion policies, tokens and roles, events and webhooks."""
