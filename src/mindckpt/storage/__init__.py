"""Where bytes land and where they come from: atomic local files and bounded readers."""
