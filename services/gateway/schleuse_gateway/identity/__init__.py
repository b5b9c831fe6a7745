"""Identity and access at the gateway: sessions, OIDC, local accounts, API keys, rate limits, audit."""
