"""KEDA's resources parsed at the edge into frozen typed objects; every problem at once."""
