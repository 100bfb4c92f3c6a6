"""Test doubles and helpers: real servers on loopback sockets that stand in for the model, webhooks and opsgate."""
