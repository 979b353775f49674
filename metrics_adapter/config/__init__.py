"""Settings and the command line's flags."""
