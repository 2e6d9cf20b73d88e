"""HTTP endpoint health checks, run as two dotflow workflows."""

__version__ = "0.1.0"
