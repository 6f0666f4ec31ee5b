#!/bin/sh
# keepalived track script: succeeds while the local Shoal node is ready to
# take traffic. `GET /ready` on the node's admin API answers 200 when the
# node serves its state and is not drained, 503 otherwise (`shoal node
# drain N`, a config that does not load on this node, shutting down), and
# nothing at all when the node is down: all of those move the VIP away.
#
#   shoal-ready.sh ADMIN_ADDR        e.g. shoal-ready.sh 10.0.0.11:9090
#
# /ready needs no token. One second at most, so a hung node counts as
# not ready within keepalived's interval.
exec curl -sf -o /dev/null --max-time 1 "http://${1:?usage: shoal-ready.sh ADMIN_ADDR}/ready"
