#!/usr/bin/env bash
# Stops what up.sh started in DIR. The test bed's state is thrown away, so there is
# nothing to shut down gracefully: KILL at once. Then removes the pods' namespaces (their
# veths go with them) and the bridge. (A bed that crashed leaves none of these: they live
# in namespaces that end with the scenario's processes.)
DIR="$1"
[ -f "$DIR/pids" ] && xargs -r kill -9 < "$DIR/pids" 2>/dev/null
# Only the bed's own tmpfs (see up.sh), never a host's /run/netns.
if [ "$(findmnt -n -o SOURCE /run/netns 2>/dev/null)" = tmpfs-buckets-e2e ]; then
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do ip netns del "$ns" 2>/dev/null; done
  [ -n "${BUCKETS_TESTBED_BRIDGE:-}" ] && ip link del "$BUCKETS_TESTBED_BRIDGE" 2>/dev/null
fi
exit 0
