"""Data access: the only place that calls AWS. Clients are injected."""
