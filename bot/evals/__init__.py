"""``opsgate eval``: cases beside each agent (``agents/<name>/evals/*.yaml``) run against the configured model."""
