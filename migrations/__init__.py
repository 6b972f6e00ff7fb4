"""clawbeat's alembic migrations (PostgreSQL and SQLite); run them via monitor.store.migrate."""
