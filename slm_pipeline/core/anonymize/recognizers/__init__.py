"""Our Presidio recognizers, by kind."""
