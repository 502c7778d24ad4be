#!/usr/bin/env bash
# System packages singer needs: ffmpeg (decode/encode, rubberband re-keying) and redis-server (the Celery broker
# for scale-out; the tests start one on loopback); with --test also chromium (the report tests render pages in it
# headless). Installs with apt-get when missing; on other systems prints what to install. Idempotent.
set -euo pipefail
need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# a C compiler and Python's headers: webrtcvad (under resemblyzer, a test extra) is built from source
command -v gcc >/dev/null 2>&1 || need+=(gcc)
[ -f "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ] || need+=(python3-dev)
if [ "${1:-}" = "--test" ]; then command -v chromium >/dev/null 2>&1 || need+=(chromium); fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "Please install: ${need[*]} (e.g. brew install ffmpeg redis)" >&2
  exit 1
fi
