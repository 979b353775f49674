"""From a ScaledObject to pollable triggers: authentication, env, and the objects
they read (from files or from watches)."""
