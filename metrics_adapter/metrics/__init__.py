"""The data path: the poller, the store the API answers from, KEDA-named series."""
