"""sleeptrack: open, self-hostable sleep tracking from night sound.

The base install holds the analysis engine (``sleeptrack.analysis``), the night simulator
(``sleeptrack.sim``) and the client SDK (``sleeptrack.sdk``); the server comes with the
``server`` extra.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
