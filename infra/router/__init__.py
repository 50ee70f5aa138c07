"""The local target's traffic and metrics plumbing: HAProxy in front, Prometheus beside it.

Both run as managed host processes (not containers: the Debian packages are on the host, no
image can be pulled, and a host process reaches the containers' published loopback ports):

- `haproxy_config` renders haproxy.cfg from a `Slots` map (two fixed server slots, a and b);
- `haproxy.HAProxy` starts it once, then changes weights, roles and maintenance state only
  through the runtime API socket (never a reload or restart);
- `prometheus.Prometheus` scrapes HAProxy's exporter and each vLLM /metrics, labelled with
  variant and model_version; it is reconfigured by rewriting its file and POST /-/reload;
- `process.ManagedProcess` keeps a pid file and tells a live process of ours from a reused pid.
"""
