"""HTTP endpoint health checks, run as two dotflow workflows."""

__version__ = "0.1.0"
TOOL_NAME = "health-check-flow"

# Every UTC timestamp the tool writes, except the report's generated_at,
# whose older layout programs reading the seed's report expect.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
