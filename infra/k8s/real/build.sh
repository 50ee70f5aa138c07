#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager and kube-scheduler from Debian's `kubernetes`
# source package (1.20.2) with Debian's Go 1.19, once, cached under ~/.cache/canaryflow.
#
#     infra/k8s/real/build.sh            # prints the bin directory; seconds when cached
#
# The deb-src entry is derived at run time from the machine's own apt sources (deb822
# .sources files with Types: deb, or sources.list `deb` lines) into a private apt state
# under the cache: no host name is written anywhere, the system's apt state is untouched.
# Trap (ENVIRONMENT.md): this tree's vendored reflect2 1.0.1 segfaults on custom resources
# under Go 1.19; Debian's golang-github-modern-go-reflect2-dev (1.0.2) is vendored instead.
# Heavy: one binary at a time, nice 19.
set -euo pipefail
CACHE=${CANARYFLOW_CACHE:-$HOME/.cache/canaryflow}/k8s-real
BIN=$CACHE/bin
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)
have_all() { for b in "${BINARIES[@]}"; do [[ -x $BIN/$b ]] || return 1; done; }
if have_all; then echo "$BIN"; exit 0; fi
mkdir -p "$CACHE/apt/sources.list.d" "$CACHE/apt/lists/partial" "$BIN"

missing=()
for pkg in golang-1.19-go etcd-server golang-github-modern-go-reflect2-dev dpkg-dev rsync; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi

# deb-src from the machine's own sources
: > "$CACHE/apt/sources.list.d/src.sources"
for f in /etc/apt/sources.list.d/*.sources; do
  if [[ -f $f ]]; then
    sed 's/^Types:.*\bdeb\b.*$/Types: deb-src/' "$f" >> "$CACHE/apt/sources.list.d/src.sources"
    echo >> "$CACHE/apt/sources.list.d/src.sources"
  fi
done
: > "$CACHE/apt/src.list"
if [[ -f /etc/apt/sources.list ]]; then
  sed -n 's/^deb \(.*\)$/deb-src \1/p' /etc/apt/sources.list > "$CACHE/apt/src.list"
fi
APT=(-o "Dir::Etc::SourceParts=$CACHE/apt/sources.list.d" -o "Dir::Etc::SourceList=$CACHE/apt/src.list"
     -o "Dir::State::Lists=$CACHE/apt/lists" -o "APT::Sandbox::User=root")
SRC=$(ls -d "$CACHE"/src/kubernetes-*/ 2>/dev/null | head -1 || true)
if [[ -z $SRC ]]; then
  apt-get "${APT[@]}" update >&2
  mkdir -p "$CACHE/src"
  (cd "$CACHE/src" && apt-get "${APT[@]}" source kubernetes >&2)
  SRC=$(ls -d "$CACHE"/src/kubernetes-*/ | head -1)
fi
REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2
rm -rf "$SRC/vendor/github.com/modern-go/reflect2"
cp -r "$REFLECT2" "$SRC/vendor/github.com/modern-go/reflect2"
# every mention (require, replace, vendor/modules.txt) must agree for -mod=vendor
sed -i 's|github.com/modern-go/reflect2 v1.0.1|github.com/modern-go/reflect2 v1.0.2|g' \
  "$SRC/go.mod" "$SRC/vendor/modules.txt"
# The tree's own build (hack/make-rules/build.sh: GOPATH mode over vendor/, as 1.20 did).
export PATH=/usr/lib/go-1.19/bin:$PATH GOCACHE=$CACHE/gocache GOTOOLCHAIN=local
for b in "${BINARIES[@]}"; do
  [[ -x $BIN/$b ]] && continue
  (cd "$SRC" && nice -n 19 make WHAT="cmd/$b" >&2)
  cp "$SRC/_output/local/bin/linux/amd64/$b" "$BIN/$b.tmp"
  mv "$BIN/$b.tmp" "$BIN/$b"
done
echo "$BIN"
