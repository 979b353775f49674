"""Who may read the metrics API: kube-apiserver's delegated authentication and authorization.

- :mod:`.identity`: the user, the request's attributes, trusted CAs (immutable);
- :mod:`.authn`: front-proxy certificate + headers, client certificates, bearer tokens;
- :mod:`.authz`: SubjectAccessReview with remembered decisions, masters allowed outright;
- :mod:`.reviews`: the remembered, single-flight answers both use;
- :mod:`.middleware`: the ASGI gate in front of every route but the health checks;
- :mod:`.sources`: the flags' CA files and kube-system/extension-apiserver-authentication,
  followed while running;
- :mod:`.kube_reviewer`: TokenReview and SubjectAccessReview over the Kubernetes API;
- :mod:`.gate`: all of it assembled from the settings.

Only :mod:`.kube_reviewer`, :mod:`.sources` and :mod:`.gate` know the Kubernetes client; the
request path (middleware, authn, authz) does not (import-linter holds it).
"""
