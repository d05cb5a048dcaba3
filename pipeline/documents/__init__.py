"""Documents as a whole: deleting them (from every index version, SQL and the dedup state), one by one, by
source or by the job that brought them, as delete jobs."""
