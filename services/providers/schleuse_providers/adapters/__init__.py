"""Adapters to each provider's API, all behind one port (`ProviderAdapter`)."""
