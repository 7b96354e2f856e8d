"""A/B experiments between adapter versions: assignment, statistics and their service."""
