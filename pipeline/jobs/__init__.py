"""Job lifecycle use cases that every kind of job shares: worker leases, the revive sweep's selection,
per-stage accounting."""
