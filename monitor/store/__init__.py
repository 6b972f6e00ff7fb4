"""Persistence: models, migrations, repository queries and the write-behind writer."""
