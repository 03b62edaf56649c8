"""``bench faults``: faults injected into the real processes, each judged beside its criteria
(``inject`` the faults, ``observe`` what an observer sees, ``judge`` the checks on data,
``run`` one demo a fault and the JSON)."""
