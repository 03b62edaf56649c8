"""The whole system on one machine: router, patient node and console as processes."""
