"""The engine: runs targets under leases, performing the core's steps through the ports."""
