"""What a run leaves behind as data: the timeline of events and the typed facts read from it."""
