"""Tests of the night simulator (``sleeptrack.sim``) and ``sleeptrack simulate``."""
