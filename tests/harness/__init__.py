"""Real-service test harness: Mosquitto and PostgreSQL started by the tests."""
