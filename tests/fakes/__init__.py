"""Stand-ins for services that cannot run on our machines (only Consul, so far)."""
