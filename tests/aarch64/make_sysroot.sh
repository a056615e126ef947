#!/bin/sh
# An aarch64 Debian sysroot with Python 3.11, numpy 1.23.5 and mxnet 1.9.1 (its aarch64 wheel),
# in which tests/test_aarch64_emulated.py runs bmxnet under qemu-aarch64-static: what a
# Raspberry Pi with a 64-bit OS has after `apt-get install python3 libopenblas0 liblapacke`
# (docs/aarch64.md). Needs dpkg's arm64 architecture (make aarch64-tools adds it).
# Usage: make_sysroot.sh DIR PIP    (PIP: the host's pip; it fetches aarch64 wheels with --platform)
set -eu
dir=$1
case "$2" in */*) pip="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")" ;; *) pip=$2 ;; esac
rm -rf "$dir.partial"
mkdir -p "$dir.partial/debs" "$dir.partial/root" "$dir.partial/wheels"
work=$(cd "$dir.partial" && pwd)
cd "$work/debs"
debs="python3.11-minimal:arm64 libpython3.11-minimal:arm64 libpython3.11-stdlib:arm64
  libc6:arm64 libgcc-s1:arm64 libstdc++6:arm64 zlib1g:arm64 libexpat1:arm64 libffi8:arm64 libssl3:arm64
  libbz2-1.0:arm64 liblzma5:arm64 libsqlite3-0:arm64 libncursesw6:arm64 libtinfo6:arm64 libreadline8:arm64
  libuuid1:arm64 libdb5.3:arm64 libnsl2:arm64 libtirpc3:arm64 libgomp1:arm64 libgfortran5:arm64 media-types
  libopenblas0-pthread:arm64 liblapacke:arm64 libtmglib3:arm64"
# apt's package lists may be older than the mirror's files (or cleaned away): refresh once
apt-get download -qq -o APT::Sandbox::User=root $debs ||
  { apt-get update -qq && apt-get download -qq -o APT::Sandbox::User=root $debs; }
for deb in *.deb; do dpkg -x "$deb" ../root; done
# the alternatives the OpenBLAS package's postinst registers
lib=../root/usr/lib/aarch64-linux-gnu
for name in libopenblas.so.0 libblas.so.3 liblapack.so.3; do ln -s "openblas-pthread/$name" "$lib/$name"; done
cd ..
platform="--only-binary=:all: --platform manylinux2014_aarch64 --python-version 3.11"
$pip download -q --no-deps $platform -d wheels mxnet==1.9.1 numpy==1.23.5
# one install: a second --target install would not add to directories the first made (bin/)
$pip install -q --no-deps $platform --target root/site wheels/*.whl \
  requests graphviz idna certifi urllib3 charset-normalizer tqdm
rm -rf debs wheels
rm -rf "${work%.partial}"
mv "$work" "${work%.partial}"
