"""Authentication, CSRF, rate limiting and secret handling for the web and API tiers."""
