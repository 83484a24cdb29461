"""Atrium recording service: which tracks are recorded, the Recording records, their media."""
