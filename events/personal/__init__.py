"""What each person keeps for themselves: saved views of the feed and display preferences."""
