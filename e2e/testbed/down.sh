#!/usr/bin/env bash
# Stops what up.sh started in DIR. The test bed's state is thrown away, so there is
# nothing to shut down gracefully: KILL at once.
DIR="$1"
[ -f "$DIR/pids" ] || exit 0
xargs -r kill -9 < "$DIR/pids" 2>/dev/null
exit 0
