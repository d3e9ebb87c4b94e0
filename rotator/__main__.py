"""``python -m rotator`` is the ``rotator`` command."""

from rotator.doors.cli import main


raise SystemExit(main())
