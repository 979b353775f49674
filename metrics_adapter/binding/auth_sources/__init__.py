"""Authentication sources that need a read before binding can use them: a file, a bound
ServiceAccount token, Vault, AWS Secrets Manager. :mod:`.base` is the plug-in interface."""
