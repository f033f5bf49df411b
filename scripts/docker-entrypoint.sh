#!/bin/sh
# The image's entrypoint: make the volume's folders writable for user tts, then run the command
# (the service, by default) as tts. Started as another user (docker run --user), it only runs the
# command: the volume must then be writable by that user.
set -eu

RUN_AS=tts

if [ "$(id -u)" != 0 ]; then
    exec "$@"
fi

data_dir="${DATA_DIR:-/workspace}"
for dir in "${VOICES_DIR:-$data_dir/voices}" "${HF_HOME:-$data_dir/huggingface-cache}"; do
    if mkdir -p "$dir" 2>/dev/null; then
        # Only when needed: a large cache on a network volume is slow to walk.
        if [ "$(stat -c %U "$dir")" != "$RUN_AS" ]; then
            chown -R "$RUN_AS:$RUN_AS" "$dir" 2>/dev/null \
                || echo "entrypoint: cannot hand $dir to user $RUN_AS; it stays read-only" >&2
        fi
    else
        echo "entrypoint: cannot create $dir (is the volume mounted read-only?)" >&2
    fi
done

export HOME="/home/$RUN_AS"
exec setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups -- "$@"
