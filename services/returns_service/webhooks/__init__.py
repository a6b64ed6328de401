"""Webhooks per the Standard Webhooks spec: the SSRF guard (`ssrf`) and the client that connects only to the
addresses it checked (`pinning`), endpoints, deliveries and attempts in the database (`store.webhooks`), and the
dispatcher that signs, sends and records each attempt (`dispatcher`); the retry and disabling rules are the
domain's (`domain.delivery`)."""
