"""Test fixtures shared by every service: real NATS, Postgres and Redis, found or embedded."""
