"""Test doubles and helpers: real loopback servers standing in for the model, webhooks and opsgate."""
