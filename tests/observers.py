"""An observer for tests: it keeps the alerts it hears and ignores the rest."""

from rotator.core.model import Change
from rotator.core.ports import Alert


class Heard:
    """An observer keeping the alerts it hears, and nothing else."""

    def __init__(self) -> None:
        """Nothing heard yet."""
        self.alerts: list[Alert] = []

    def rotation_finished(self, target: str, outcome: str, seconds: float) -> None:
        """Not an alert."""

    def alert(self, alert: Alert) -> None:
        """Keep the alert."""
        self.alerts.append(alert)

    def recorded(self, target: str, change: Change) -> None:
        """Not an alert."""
