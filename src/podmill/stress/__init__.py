"""The stress harness: soak, ramp and A/B scenarios that drive the REST API like a client."""
