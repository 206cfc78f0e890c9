"""Protocol group E3: very deep vanilla networks at the edge of chaos (deep-signal,
trainability)."""
