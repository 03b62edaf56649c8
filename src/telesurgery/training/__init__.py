"""Training the hybrid team: trainees' attempts in a local database, their learning curves,
and fault drills (``telesurgery train``, ``train report``, ``drill``)."""
