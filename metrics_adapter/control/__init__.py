"""Decisions and cluster writes: activator, HPA, status, Lease election, the controller."""
