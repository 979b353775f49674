"""The serving certificate, from wherever it comes, kept current without a restart.

- :mod:`.issue`: make a CA, a serving certificate, or a self-signed pair;
- :mod:`.files`: bring your own files (a mounted cert-manager Secret), reloaded on change;
- :mod:`.self_managed`: a CA and serving certificate kept in a Secret, the CA in the
  APIService's ``caBundle``, renewed before expiry.
"""
