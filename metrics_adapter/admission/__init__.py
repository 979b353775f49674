"""The validating admission webhook for KEDA's kinds: rules, findings, the review's wire."""
