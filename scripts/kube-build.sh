#!/usr/bin/env bash
# Builds the Kubernetes control plane the deployer tests run against, from Debian bookworm's own source
# package (kubernetes 1.20.2, every Go dependency vendored): kube-apiserver and kube-controller-manager,
# plus Debian's etcd. Nothing is downloaded but Debian packages. The binaries are cached outside the repo,
# in $RCATUNE_KUBE_CACHE (default ~/.cache/rcatune/kube); a second run returns at once.
# Cold: about 9 minutes on 2 cores. Needs root for apt-get (CI machines and these dev machines have it).
set -euo pipefail
cache="${RCATUNE_KUBE_CACHE:-$HOME/.cache/rcatune/kube}"
bin="$cache/bin"
if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ] && command -v etcd > /dev/null; then
  echo "kube testbed: binaries ready in $bin"; exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "kube testbed: building needs root for apt-get (golang-go etcd-server dpkg-dev rsync); skipped" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q golang-go etcd-server dpkg-dev rsync > /dev/null
mkdir -p "$cache/src" "$bin"
cd "$cache/src"
cat > deb-src.sources <<'SOURCES'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt_src=(-o Dir::Etc::sourcelist="$cache/src/deb-src.sources" -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0)
apt-get "${apt_src[@]}" update -q > /dev/null
apt-get "${apt_src[@]}" source --download-only -q kubernetes > /dev/null
rm -rf tree && dpkg-source -x kubernetes_*.dsc tree > /dev/null
cd tree
mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
echo "kube testbed: building kube-apiserver and kube-controller-manager (about 9 minutes cold)"
(cd .go/src/k8s.io/kubernetes && env GOPATH="$PWD/.go" CGO_ENABLED=0 HOME="$cache/home" \
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" > "$cache/build.log" 2>&1) \
  || { tail -20 "$cache/build.log" >&2; exit 1; }
cp _output/bin/kube-apiserver _output/bin/kube-controller-manager "$bin/"
cd "$cache" && rm -rf src/tree home
echo "kube testbed: binaries ready in $bin"
