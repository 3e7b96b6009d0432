"""metwatch: watch news sources for coverage of tracked inspection findings."""

__version__ = "0.1.0"
