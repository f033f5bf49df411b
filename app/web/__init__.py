"""HTTP plumbing every endpoint shares: keys, body limits, JSON, request ids, errors, OpenAPI."""
