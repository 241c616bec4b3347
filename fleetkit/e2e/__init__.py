"""End-to-end proof of the serving path on loopback: real Envoy, OpenAI-compatible backends, real vLLM.

``envoy_config`` turns the kit's rendered ingress objects into an Envoy bootstrap (istiod cannot
run here), ``stub`` is a small OpenAI-compatible backend, ``jwt`` signs test tokens, ``otlp``
receives spans, ``procs`` starts and stops local servers by PID, ``runner`` is ``./dev e2e`` and
``checks`` its named checks (one function each).
Nothing here talks to anything but 127.0.0.1.
"""
