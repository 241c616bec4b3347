"""Multi-cluster Istio: trust (CA), control plane, east-west gateways, remote secrets."""
