"""Resource pages: one resource's labels, timeline, counts by event and company it keeps."""
