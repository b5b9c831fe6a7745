"""Provider-neutral domain: catalogue, routing, resilience (fallback, breaker, limits), cost. No I/O."""
